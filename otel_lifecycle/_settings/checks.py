"""Checks of explicit arguments: a bad one raises ``TypeError``/``ValueError`` naming it.

A bad argument is a programming error, unlike a bad environment value, which
warns and falls back to the default (``environment``).
"""

from __future__ import annotations

import math
import os


def check_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    """Validate an explicit duration argument in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)


def check_positive_int(name: str, value: object) -> int:
    """Validate an explicit positive integer argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Validate an explicit argument that must be one of ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_text(name: str, value: object) -> str:
    """Validate an explicit non-blank string argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def check_keys(name: str, value: object) -> tuple[str, ...]:
    """Validate an explicit non-empty sequence of non-empty strings."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple of str, got {type(value).__name__}")
    if not value or not all(isinstance(key, str) and key for key in value):
        raise ValueError(f"{name} must be a non-empty list of non-empty str, got {value!r}")
    return tuple(value)


def check_path(name: str, value: object) -> str:
    """Validate an explicit file path argument (``str`` or ``os.PathLike``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike path, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return path


def check_bool(name: str, value: object) -> bool:
    """Validate an explicit boolean argument."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_callables(**arguments: object) -> None:
    """Each argument that is not None must be callable."""
    for name, value in arguments.items():
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable")
