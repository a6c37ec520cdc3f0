"""The fault-injection harness on a fixed set of seeds (``tests/process/faults.py``).

Each seed is a random plan of faults (exporter faults, one to three signals at
random moments, exit paths, a locked or removed journal, ``configure()`` on a
live provider, threads ending spans, a fork) run in a real process against the
real receiver; the run must keep every invariant. Reproduce a seed with
``python -m tests.process.faults SEED``; sweep many with ``--seeds FIRST:LAST``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.faults import describe, run_seed

SEEDS = range(24)
"""The seeds CI runs: about two minutes on two cores."""


@pytest.mark.parametrize("seed", SEEDS)
def test_a_seeded_plan_of_faults_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    plan, found = run_seed(seed, tmp_path)
    assert found == [], f"python -m tests.process.faults {seed}\n{describe(plan)}\n" + "\n".join(
        found[:20]
    )
