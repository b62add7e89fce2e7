"""Reading settings: constructor argument > environment variable > default.

A bad argument is the caller's mistake and raises ``ValueError`` naming the
argument; a bad environment value is the deployment's and logs a warning
naming the variable, then the default is used.
"""

from __future__ import annotations

import logging
import math
import os

_logger = logging.getLogger(__name__)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_str(name: str) -> str | None:
    """The variable's value, or ``None`` when it is unset or blank."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def resolve_bool(arg: bool | None, arg_name: str, env: str, default: bool) -> bool:
    if arg is not None:
        if not isinstance(arg, bool):
            raise ValueError(f"{arg_name} must be a bool, not {type(arg).__name__}")
        return arg
    raw = env_str(env)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    _logger.warning("Ignoring %s=%r: expected true or false; using the default %s.", env, raw, default)
    return default


def resolve_number(
    arg: float | None,
    arg_name: str,
    env: str,
    default: float,
    *,
    minimum: float,
    integer: bool = False,
) -> float:
    """Resolve a number that must be at least ``minimum`` (an integer if ``integer``)."""
    kind = "an integer" if integer else "a number"
    if arg is not None:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or (integer and not isinstance(arg, int)):
            raise ValueError(f"{arg_name} must be {kind}, not {arg!r}")
        if not arg >= minimum:  # also rejects NaN
            raise ValueError(f"{arg_name} must be at least {minimum}, not {arg!r}")
        if arg == math.inf:
            raise ValueError(f"{arg_name} must be finite, not {arg!r}")
        return arg
    raw = env_str(env)
    if raw is None:
        return default
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        _logger.warning("Ignoring %s=%r: expected %s; using the default %s.", env, raw, kind, default)
        return default
    if not minimum <= value < math.inf:  # NaN fails both
        _logger.warning(
            "Ignoring %s=%r: must be finite, at least %s; using the default %s.", env, raw, minimum, default
        )
        return default
    return value
