"""Every unit string of an experiment is parsed here, and only here.

Experiments are written by people (``250ms``, ``300/s``, ``10%``, ``64MiB``);
the engine works in SI base units (seconds, events per second, fractions,
bytes).  Keeping one parser means one set of rules, one error message style
and one property test.

Rules (documented in docs/experiment.md):

* duration: a number with a unit ``us|ms|s|m|h`` (``1m30s`` and ``1.5s``
  allowed); a bare number means seconds.  Negative durations are errors.
* rate: ``N/s``, ``N/m``, ``N/h`` (also ``rps``/``qps`` suffix); a bare number
  means per second.
* percent: ``10%`` or a fraction in ``[0, 1]``; results are fractions.
* size: ``B``, ``KB/MB/GB`` (powers of 1000) and ``KiB/MiB/GiB`` (1024).
* quantity: any of the above for tolerances; a duration-looking value becomes
  seconds, a percent a fraction, a size bytes, a plain number stays as is.

Every result is finite (``.inf``, ``.nan``, ``1e999`` and 401-digit integers are
errors, never an ``OverflowError``), and durations are at most
:data:`MAX_SECONDS`: nothing the engine schedules (``sleep``, deadlines) can
take a longer one.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "UnitError",
    "format_duration",
    "parse_duration",
    "parse_percent",
    "parse_quantity",
    "parse_rate",
    "parse_size",
]


class UnitError(ValueError):
    """A unit string could not be parsed; the message says what was expected."""


_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_DUR_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DUR_PART = re.compile(rf"({_NUM})(us|µs|ms|s|m|h)")
_DUR_FULL = re.compile(rf"^(?:(?:{_NUM})(?:us|µs|ms|s|m|h))+$")
_RATE = re.compile(rf"^({_NUM})\s*(?:/\s*(s|sec|second|m|min|minute|h|hour)|(rps|qps))?$")
_RATE_UNITS = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 1 / 60, "min": 1 / 60,
               "minute": 1 / 60, "h": 1 / 3600, "hour": 1 / 3600}
_SIZE = re.compile(rf"^({_NUM})\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|k|K|M|G)?$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9,
               "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


#: Longest duration accepted anywhere (366 days): longer ones overflow timers, and no experiment lasts a year.
MAX_SECONDS = 366 * 86400.0


def _shown(value: object) -> str:
    """``repr`` cut to 40 characters: a 401-digit number makes a readable message too."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}... ({len(text)} characters)"


def _finite(x: float, what: str, text: object) -> float:
    if not math.isfinite(x):
        raise UnitError(f"{what} must be finite, got {_shown(text)}")
    return x


def _float(value: int | float | str, what: str) -> float:
    """``float(value)``, finite, with a UnitError (not OverflowError) for numbers too big for a float."""
    try:
        x = float(value)
    except OverflowError:
        raise UnitError(f"{what} is too large, got {_shown(value)}") from None
    return _finite(x, what, value)


def _bounded_duration(x: float, value: object) -> float:
    if x > MAX_SECONDS:
        raise UnitError(f"duration is longer than {MAX_SECONDS / 86400:g} days, got {_shown(value)}")
    return x


def parse_duration(value: object) -> float:
    """Return seconds from ``250ms``, ``2m``, ``1m30s``, ``1.5`` (seconds)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a duration like '250ms' or '2m', got {value!r}")
    if isinstance(value, int | float):
        x = _float(value, "duration")
        if x < 0:
            raise UnitError(f"duration must not be negative, got {_shown(value)}")
        return _bounded_duration(x, value)
    if not isinstance(value, str):
        raise UnitError(f"expected a duration like '250ms' or '2m', got {_shown(value)}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(_NUM, text):
        return _bounded_duration(_float(text, "duration"), value)
    if not text or not _DUR_FULL.match(text):
        raise UnitError(f"invalid duration {value!r}: expected a number with a unit us|ms|s|m|h, e.g. '250ms', '2m', '1m30s'")
    total = 0.0
    for num, unit in _DUR_PART.findall(text):
        total += _float(num, "duration") * _DUR_UNITS[unit]
    return _bounded_duration(_finite(total, "duration", value), value)


def format_duration(seconds: float) -> str:
    """Render seconds for people: ``0.25`` → ``250ms``, ``90`` → ``1m30s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.4g}ms"
    if seconds < 60:
        return f"{seconds:.4g}s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:.3g}s" if s else f"{int(m)}m"


def parse_rate(value: object) -> float:
    """Return events per second from ``300/s``, ``1200/m``, ``50rps`` or a bare number."""
    if isinstance(value, bool):
        raise UnitError(f"expected a rate like '300/s', got {value!r}")
    if isinstance(value, int | float):
        x = _float(value, "rate")
    elif isinstance(value, str):
        m = _RATE.match(value.strip())
        if not m:
            raise UnitError(f"invalid rate {_shown(value)}: expected e.g. '300/s', '1200/m', '50rps'")
        x = _float(m.group(1), "rate") * _RATE_UNITS[m.group(2)]
    else:
        raise UnitError(f"expected a rate like '300/s', got {value!r}")
    if x < 0:
        raise UnitError(f"rate must not be negative, got {value!r}")
    return _finite(x, "rate", value)


def parse_percent(value: object) -> float:
    """Return a fraction in [0, 1] from ``10%``, ``0.1`` or ``2.5 %``."""
    if isinstance(value, bool):
        raise UnitError(f"expected a percentage like '10%', got {value!r}")
    if isinstance(value, int | float):
        x = _float(value, "percentage")
        if not 0.0 <= x <= 1.0:
            raise UnitError(f"a bare number is a fraction and must be in [0, 1], got {value!r} (write '{value}%' for percent)")
        return x
    if not isinstance(value, str):
        raise UnitError(f"expected a percentage like '10%', got {value!r}")
    text = value.strip()
    if text.endswith("%"):
        num = text[:-1].strip()
        if not re.fullmatch(_NUM, num):
            raise UnitError(f"invalid percentage {value!r}: expected e.g. '10%' or '2.5%'")
        x = _float(num, "percentage") / 100.0
    elif re.fullmatch(_NUM, text):
        x = _float(text, "percentage")
    else:
        raise UnitError(f"invalid percentage {value!r}: expected e.g. '10%' or a fraction like 0.1")
    if not 0.0 <= x <= 1.0:
        raise UnitError(f"percentage must be between 0% and 100%, got {value!r}")
    return x


def parse_size(value: object) -> int:
    """Return bytes from ``512KiB``, ``10MB``, ``1k`` or a bare number."""
    if isinstance(value, bool):
        raise UnitError(f"expected a size like '64MiB', got {value!r}")
    if isinstance(value, int | float):
        x = _float(value, "size")
        if x < 0:
            raise UnitError(f"size must not be negative, got {_shown(value)}")
        return int(x)
    if not isinstance(value, str):
        raise UnitError(f"expected a size like '64MiB', got {value!r}")
    m = _SIZE.match(value.strip())
    if not m:
        raise UnitError(f"invalid size {value!r}: expected e.g. '512KiB', '10MB', '1GiB'")
    return int(_finite(_float(m.group(1), "size") * _SIZE_UNITS[m.group(2)], "size", value))


def parse_quantity(value: object) -> float:
    """Parse a tolerance bound: numbers stay, ``100ms`` → 0.1, ``1%`` → 0.01, ``1KiB`` → 1024."""
    if isinstance(value, bool):
        raise UnitError(f"expected a number or a value with a unit, got {value!r}")
    if isinstance(value, int | float):
        return _float(value, "value")
    if not isinstance(value, str):
        raise UnitError(f"expected a number or a value with a unit, got {value!r}")
    text = value.strip()
    sign = 1.0
    if text.startswith("-"):
        sign, text = -1.0, text[1:].strip()
    if re.fullmatch(_NUM, text):
        return sign * _float(text, "value")
    if text.endswith("%"):
        num = text[:-1].strip()
        if re.fullmatch(_NUM, num):
            return sign * _float(num, "value") / 100.0
    if _DUR_FULL.match(text.replace(" ", "")):
        return sign * parse_duration(text)
    if _SIZE.match(text):
        return sign * float(parse_size(text))
    raise UnitError(f"invalid value {value!r}: expected a number, a duration ('100ms'), a percentage ('1%') or a size ('1MiB')")
