"""Reading settings: constructor argument > environment variable > default.

A bad argument is the caller's mistake and raises ``ValueError`` naming the
argument; a bad environment value is the deployment's and logs a warning
naming the variable, then the default is used.
"""

from __future__ import annotations

import logging
import math
import os
import threading

_logger = logging.getLogger(__name__)

#: The longest a thread can wait (``threading.TIMEOUT_MAX``, about 292 years): a timeout above it
#: would make every wait on it raise ``OverflowError``, in a thread of ours.
LONGEST_WAIT = threading.TIMEOUT_MAX

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
    maximum: float = math.inf,
    integer: bool = False,
) -> float:
    """Resolve a number, finite, at least ``minimum`` and at most ``maximum`` (an integer if ``integer``)."""
    kind = "an integer" if integer else "a number"
    if arg is not None:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or (integer and not isinstance(arg, int)):
            raise ValueError(f"{arg_name} must be {kind}, not {arg!r}")
        if not arg >= minimum:  # also rejects NaN
            raise ValueError(f"{arg_name} must be at least {minimum}, not {arg!r}")
        if arg == math.inf:
            raise ValueError(f"{arg_name} must be finite, not {arg!r}")
        if arg > maximum:
            raise ValueError(f"{arg_name} must be at most {maximum}, not {arg!r}")
        return arg
    raw = env_str(env)
    if raw is None:
        return default
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        _logger.warning("Ignoring %s=%r: expected %s; using the default %s.", env, raw, kind, default)
        return default
    if not (minimum <= value < math.inf and value <= maximum):  # NaN fails them all
        bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum < math.inf else "")
        _logger.warning(
            "Ignoring %s=%r: must be %s%s; using the default %s.",
            env,
            raw,
            "" if integer else "finite, ",
            bounds,
            default,
        )
        return default
    return value


def resolve_int(
    arg: int | None, arg_name: str, env: str, default: int, *, minimum: int, maximum: float = math.inf
) -> int:
    """:func:`resolve_number` for a whole number (a count, a size in bytes, a port)."""
    return int(resolve_number(arg, arg_name, env, default, minimum=minimum, maximum=maximum, integer=True))


def resolve_seconds(arg: float | None, arg_name: str, env: str, default: float, *, minimum: float) -> float:
    """:func:`resolve_number` for a time in seconds: at most :data:`LONGEST_WAIT`, the longest a thread can wait."""
    return resolve_number(arg, arg_name, env, default, minimum=minimum, maximum=LONGEST_WAIT)


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float that is not NaN (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN is not


def wait_budget(timeout_millis: object, default_millis: float) -> float:
    """Seconds for a flush or shutdown called with ``timeout_millis``, whatever the caller passed.

    A number as given (negative: no wait; infinite: the longest a thread can wait); ``None``, NaN or
    anything not a number: the default. These are runtime calls: a bad value must not raise.
    """
    if is_number(timeout_millis):
        return min(max(timeout_millis / 1000, 0.0), LONGEST_WAIT)  # type: ignore[operator]
    return default_millis / 1000
