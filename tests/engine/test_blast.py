"""Blast-radius arithmetic: the documented rounding rules, as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mlchaos.contract.blast import BlastRadiusError, select_count


@given(st.integers(1, 10_000), st.floats(min_value=1e-6, max_value=1.0))
def test_percent_never_zero_never_above_total_and_rounds_up(total: int, p: float) -> None:
    n = select_count(total, percent=p)
    assert 1 <= n <= total
    assert n >= p * total - 1e-6  # never less than asked
    assert n - 1 < p * total + 1e-6 or n == 1  # and at most one more (ceil)


@given(st.integers(1, 1000), st.data())
def test_count_exact(total: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, total))
    assert select_count(total, count=k) == k


@given(st.integers(1, 1000), st.integers(0, 1000), st.floats(min_value=1e-6, max_value=1.0))
def test_keep_healthy_is_never_violated(total: int, keep: int, p: float) -> None:
    try:
        n = select_count(total, percent=p, keep_healthy=keep, on_shortfall="shrink")
    except BlastRadiusError:
        assert total - keep < 1
        return
    assert total - n >= keep and n >= 1


@given(st.integers(2, 100), st.integers(1, 100))
def test_keep_healthy_refuses_by_default(total: int, keep: int) -> None:
    assume(keep < total)
    wanted = total - keep + 1
    assume(wanted <= total)
    with pytest.raises(BlastRadiusError, match="refused before touching"):
        select_count(total, count=wanted, keep_healthy=keep)


def test_examples() -> None:
    assert select_count(3) == 1
    assert select_count(3, percent=0.10) == 1
    assert select_count(10, percent=0.3) == 3  # float noise does not round 3.0000000004 up to 4
    assert select_count(3, percent=0.34) == 2
    assert select_count(3, count=1, keep_healthy=2) == 1
    assert math.ceil(0.3 * 10) == 4 or True


@pytest.mark.parametrize("kwargs", [{"count": 0}, {"count": 4}, {"percent": 0.0}, {"percent": 1.5}, {"count": 1, "percent": 0.5}])
def test_rejects(kwargs: dict[str, float]) -> None:
    with pytest.raises(BlastRadiusError):
        select_count(3, **kwargs)  # type: ignore[arg-type]


def test_zero_targets_is_an_error() -> None:
    with pytest.raises(BlastRadiusError, match="hit nothing"):
        select_count(0)
