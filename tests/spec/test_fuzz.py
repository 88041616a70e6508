"""Fuzzing experiment loading (issue 17): only SpecErrors, each with a true position, in bounded time and memory.

A seeded mutator takes the experiments the package ships (globbed at test time, so a
new example is fuzzed too) and breaks them the way the issue's 10,060-file campaign
did: hostile scalars (401-digit numbers, ``1e999``, ``.inf``, bad ``!!tags``), control
characters, keys with newlines and ESC, deep nesting, alias bombs, truncation, spliced
and shuffled lines, structural edits through the parsed data.  Every case must either
load or raise :class:`SpecErrors` whose every error

* has LINE ≥ 1 and COL ≥ 1, within the text (COL at most one past its line's end),
* prints as exactly one line with no control character,

and each case must finish within :data:`CASE_SECONDS`; every
:data:`MEMORY_EVERY`-th case runs under ``tracemalloc`` with a peak bound.

``MLCHAOS_FUZZ_CASES`` sets the number of mutated files (default 3000, ~30 s on a busy
two-core machine); ``MLCHAOS_FUZZ_SEED`` the seed (a failure prints the seed and case
number, and the mutated text is reproducible from them).
"""

from __future__ import annotations

import os
import random
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlchaos
from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_text

CASES = int(os.environ.get("MLCHAOS_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("MLCHAOS_FUZZ_SEED", "17"))
CASE_SECONDS = 5.0  # generous for a loaded CI box; a typical case takes a few milliseconds
MEMORY_EVERY = 25
PEAK_BYTES = 64 * 2**20

PKG = Path(mlchaos.__file__).parent
LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def shipped_experiments() -> list[Path]:
    files = sorted(PKG.glob("examples/**/*.yaml")) + sorted(PKG.glob("platforms/kubernetes/experiments/*.yaml"))
    return [f for f in files if isinstance(yaml.safe_load(f.read_text()), dict)]


HOSTILE_SCALARS = [
    "9" * 401, "-" + "9" * 401, "1e999", "-1e999", ".inf", "-.inf", ".nan", "'1e999'", "'9" + "9" * 400 + "s'",
    "!!bool maybe", "!!timestamp x", "!!int x", "!!float x", "!!binary '*'", "!!python/object:os.system x",
    "!!int " + "9" * 5000, "'\\x00'", '"\\0\\e[31m"', "~", "''", "[]", "{}", "-1", "0", "1e-999", "0x7fffffffffffffff",
    "'1e999%'", "'1e999/s'", "'1e999ms'", "'http://[::1'", "'http://127.0.0.1:99999/'", "&a x", "*nope",
    '"a\\nb.yaml:1:1: forged"', "'" + "x" * 5000 + "'", "'\u202e\u2028'",
]
CHARS = ["\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\ufeff", "\ufffe", "\t",
         "\r", "\n", ":", "-", "[", "{", "&", "*", "!", "|", ">", "'", '"', "#", "%", "@", "`", "é", "\U0001f600"]


def _bomb(levels: int) -> str:
    parts = ["&b0 [" + ",".join(["x"] * 10) + "]"]
    parts += [f"&b{i} [" + ",".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def _lines(text: str) -> list[str]:
    return text.split("\n")


def m_scalar(rng: random.Random, text: str) -> str:
    """Replace one value after a ``key:`` with a hostile scalar."""
    lines = _lines(text)
    idx = [i for i, ln in enumerate(lines) if re.search(r":\s+\S", ln)]
    if not idx:
        return text
    i = rng.choice(idx)
    key = lines[i].split(":", 1)[0]
    lines[i] = f"{key}: {rng.choice(HOSTILE_SCALARS)}"
    return "\n".join(lines)


def m_char(rng: random.Random, text: str) -> str:
    pos = rng.randrange(len(text) + 1)
    return text[:pos] + rng.choice(CHARS) * rng.choice([1, 1, 1, 3]) + text[pos:]


def m_delete(rng: random.Random, text: str) -> str:
    a = rng.randrange(len(text) + 1)
    return text[:a] + text[a + rng.randrange(1, 40):]


def m_truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text) + 1)]


def m_lines(rng: random.Random, text: str) -> str:
    """Duplicate, drop, swap or re-indent lines."""
    lines = _lines(text)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(4)
    if op == 0:
        lines.insert(j, lines[i])
    elif op == 1:
        del lines[i]
    elif op == 2:
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines[i] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[i]
    return "\n".join(lines)


def m_deep(rng: random.Random, text: str) -> str:
    depth = rng.choice([50, 99, 101, 150, 900, 3000])
    open_, close = rng.choice([("[", "]"), ("{a: ", "}")])
    return text + f"\ntags: {open_ * depth}1{close * depth}\n"


def m_bomb(rng: random.Random, text: str) -> str:
    levels = rng.choice([3, 5, 6, 7, 9, 12])
    if rng.random() < 0.5 and "steady_state:" in text:  # inside a probe body, as the issue found
        return text.replace("steady_state:\n", f"steady_state:\n  - probe: http\n    json: {_bomb(levels)}\n", 1)
    return text + f"\nx-bomb: {_bomb(levels)}\n"


def m_key(rng: random.Random, text: str) -> str:
    """A key made of nasty characters, at the top level or inside a list item."""
    key = rng.choice(['"a\\nother.yaml:1:1: forged"', '"\\e[2J\\e[31mred"', '"\\0"', "'\u202eevil'",
                      "? [a, b]", "? {a: 1}", "<<", "'" + "k" * 300 + "'"])
    line = f"{key}: 1" if not key.startswith("?") else f"{key}\n: 1"
    return text + "\n" + line + "\n"


def m_anchor(rng: random.Random, text: str) -> str:
    """Anchors and aliases, including recursive and undefined ones."""
    return text + rng.choice(["\ntags: &t [a, *t]\n", "\ntags: *undefined\n", "\nx: &x {a: 1}\ny: {<<: *x}\n",
                              "\nx: &x [1]\ntags: [*x, *x, *x]\n", "\nx: &x {<<: *x}\n"])


def m_structural(rng: random.Random, text: str) -> str:
    """Edit the parsed data and write it back: wrong types, unknown keys, hostile leaves."""
    if "*" in text or len(text) > 20_000:  # an earlier mutation's aliases: plain PyYAML would expand them
        return text
    try:
        data = yaml.safe_load(text)
    except Exception:  # an earlier mutation broke the YAML: nothing structural to do
        return text
    if not isinstance(data, dict):
        return text
    nodes: list[tuple[object, object]] = []

    def collect(x: object) -> None:
        if isinstance(x, dict):
            nodes.extend((x, k) for k in list(x))
            for v in x.values():
                collect(v)
        elif isinstance(x, list):
            nodes.extend((x, i) for i in range(len(x)))
            for v in x:
                collect(v)

    collect(data)
    for _ in range(rng.randint(1, 3)):
        parent, key = rng.choice(nodes)
        choice = rng.choice([10**401, float("inf"), float("nan"), -1, "", None, [], {}, "1e999", "x" * 200,
                             {"unknown": 1}, [1, [2, [3]]], True, "\x1b[31m", 2**63, -(10**401)])
        if isinstance(parent, dict) and key in parent:
            if rng.random() < 0.2:
                parent[f"{key}_typo"] = parent.pop(key)
            else:
                parent[key] = choice
        elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            parent[key] = choice
    try:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=bool(rng.getrandbits(1)))
    except yaml.YAMLError:
        return text


MUTATORS: list[Callable[[random.Random, str], str]] = [
    m_scalar, m_scalar, m_char, m_char, m_delete, m_truncate, m_lines, m_lines, m_deep, m_bomb, m_key, m_anchor,
    m_structural, m_structural,
]


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = rng.choice(MUTATORS)(rng, text)
    return text


def check_case(text: str, source: str = "fuzz.yaml") -> None:
    """The properties every input must have."""
    try:
        load_text(text, source)
    except SpecErrors as exc:
        assert exc.errors, "SpecErrors without errors"
        lines = LINE_BREAK.split(text)
        for e in exc.errors:
            assert e.flag is None
            assert e.line >= 1 and e.col >= 1, e
            assert e.line <= len(lines) + 1, (e, len(lines))
            if e.line <= len(lines):
                assert e.col <= len(lines[e.line - 1]) + 2, (e, lines[e.line - 1][:80])
            shown = str(e)
            assert "\n" not in shown and not CONTROL.search(shown), repr(shown)
            assert shown.startswith(f"{source}:{e.line}:{e.col}: "), shown


def _run_cases(n: int, seed: int) -> dict[str, float]:
    sources = [f.read_text() for f in shipped_experiments()]
    assert sources, "no shipped experiments found to fuzz"
    rng = random.Random(seed)
    slowest = 0.0
    worst_peak = 0
    for case in range(n):
        text = mutate(rng, rng.choice(sources))
        measure = case % MEMORY_EVERY == 0
        if measure:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            check_case(text)
        except BaseException as exc:
            raise AssertionError(f"seed {seed} case {case}: {type(exc).__name__}: {exc}\n--- text ---\n{text[:2000]!r}") from exc
        finally:
            elapsed = time.perf_counter() - t0
            if measure:
                worst_peak = max(worst_peak, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
        assert elapsed < CASE_SECONDS, f"seed {seed} case {case} took {elapsed:.1f}s:\n{text[:2000]!r}"
        slowest = max(slowest, elapsed)
    assert worst_peak < PEAK_BYTES, f"peak {worst_peak / 2**20:.0f} MiB"
    return {"slowest": slowest, "peak": worst_peak}


def test_shipped_experiments_are_found_and_valid() -> None:
    files = shipped_experiments()
    assert len(files) >= 5, files
    for f in files:
        load_text(f.read_text(), str(f))


def test_fuzz_shipped_experiments() -> None:
    stats = _run_cases(CASES, SEED)
    print(f"{CASES} cases, slowest {stats['slowest'] * 1e3:.0f} ms, peak {stats['peak'] / 2**20:.1f} MiB")


@pytest.mark.parametrize("mutator", list(dict.fromkeys(MUTATORS)), ids=lambda m: m.__name__)
def test_each_mutator_alone(mutator: Callable[[random.Random, str], str]) -> None:
    """Every mutation kind, on every shipped file, so a rare kind is never left out by chance."""
    rng = random.Random(SEED)
    for f in shipped_experiments():
        for _ in range(5):
            check_case(mutator(rng, f.read_text()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=0, max_size=300), st.integers(min_value=0, max_value=10_000))
def test_hypothesis_text_spliced_into_an_example(junk: str, where: int) -> None:
    base = (PKG / "examples" / "tiny-pause.yaml").read_text()
    pos = where % (len(base) + 1)
    check_case(base[:pos] + junk + base[pos:])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_hypothesis_arbitrary_text(text: str) -> None:
    check_case(text)
