"""Unit parsers: property tests (round trips, bounds) and the documented rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlchaos.spec.units import (
    MAX_SECONDS,
    UnitError,
    format_duration,
    parse_duration,
    parse_percent,
    parse_quantity,
    parse_rate,
    parse_size,
)

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_duration_integer_with_unit(n: int, unit: str) -> None:
    if n * UNITS[unit] > MAX_SECONDS:  # past the documented bound: an error, never a huge timer
        with pytest.raises(UnitError, match="longer than"):
            parse_duration(f"{n}{unit}")
        return
    assert math.isclose(parse_duration(f"{n}{unit}"), n * UNITS[unit], rel_tol=1e-12)


@given(st.integers(0, 500), st.integers(0, 59))
def test_duration_compound(m: int, s: int) -> None:
    assert parse_duration(f"{m}m{s}s") == pytest.approx(m * 60 + s)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_duration_bare_number_is_seconds(x: float) -> None:
    assert parse_duration(x) == x


@given(st.floats(min_value=1e-6, max_value=1e5, allow_nan=False))
def test_format_duration_round_trips_closely(x: float) -> None:
    assert parse_duration(format_duration(x)) == pytest.approx(x, rel=2e-3, abs=1e-6)


@given(st.text(max_size=12))
def test_duration_garbage_raises_unit_error_only(text: str) -> None:
    try:
        v = parse_duration(text)
    except UnitError:
        return
    assert v >= 0 and math.isfinite(v)


@pytest.mark.parametrize("bad", ["-1s", "1x", "ms", "", "1.2.3s", True, None, [1], -3, float("inf")])
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(bad)


@given(st.integers(0, 10**6), st.sampled_from([("s", 1.0), ("m", 1 / 60), ("h", 1 / 3600)]))
def test_rate(n: int, unit: tuple[str, float]) -> None:
    assert parse_rate(f"{n}/{unit[0]}") == pytest.approx(n * unit[1])
    assert parse_rate(f"{n}rps") == n


@given(st.floats(min_value=0, max_value=100, allow_nan=False))
def test_percent_string_and_fraction_agree(p: float) -> None:
    assert parse_percent(f"{p}%") == pytest.approx(p / 100)
    assert parse_percent(p / 100) == pytest.approx(p / 100)


@pytest.mark.parametrize("bad", ["101%", "-1%", 1.5, "ten%", "5", "", True])
def test_percent_rejects(bad: object) -> None:
    if bad == "5":
        with pytest.raises(UnitError):
            parse_percent(bad)
        return
    with pytest.raises(UnitError):
        parse_percent(bad)


@pytest.mark.parametrize(("text", "expected"), [("1KiB", 1024), ("1KB", 1000), ("2MiB", 2 * 2**20), ("3", 3), ("1.5GB", 1.5e9)])
def test_size(text: str, expected: float) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("100ms", 0.1), ("1%", 0.01), ("0.5", 0.5), (3, 3.0), ("-2", -2.0), ("1KiB", 1024.0)])
def test_quantity(text: object, expected: float) -> None:
    assert parse_quantity(text) == pytest.approx(expected)


# Issue 17: non-finite and oversized numbers are UnitErrors (a ValueError pydantic reports with a
# position), never an OverflowError escaping validation, and never a value that poisons the engine.
HUGE = 10**401


@pytest.mark.parametrize("parse", [parse_duration, parse_rate, parse_percent, parse_size, parse_quantity])
@pytest.mark.parametrize("value", [HUGE, float("inf"), float("nan"), "1e999", "nan", "inf", str(HUGE)])
def test_non_finite_and_huge_numbers_are_unit_errors(parse: object, value: object) -> None:
    with pytest.raises(UnitError):
        parse(value)  # type: ignore[operator]


@pytest.mark.parametrize("text", ["1e999%", f"{HUGE}ms", "1e999/s", "1e999MiB", "-1e999"])
def test_non_finite_with_units_are_unit_errors(text: str) -> None:
    for parse in (parse_duration, parse_rate, parse_percent, parse_size, parse_quantity):
        try:
            value = parse(text)
        except UnitError:
            continue
        assert math.isfinite(value), (parse.__name__, text, value)


def test_huge_number_message_is_short() -> None:
    with pytest.raises(UnitError) as info:
        parse_duration(HUGE)
    assert "too large" in str(info.value) and len(str(info.value)) < 120


def test_duration_bound() -> None:
    assert parse_duration(MAX_SECONDS) == MAX_SECONDS
    with pytest.raises(UnitError, match="longer than 366 days"):
        parse_duration("1e300s")
