"""``command`` steps and ``revert:`` in experiment files: shape, FILE:LINE:COL errors, the JSON Schema (issue #19)."""

from __future__ import annotations

import pytest

from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_text

HEAD = """\
title: t
target: {platform: http, url: "http://127.0.0.1:9"}
method:
  - fault: process-pause
    name: pause
    pids: [1]
    duration: 2s
"""


def errors(method_tail: str) -> list[str]:
    with pytest.raises(SpecErrors) as ei:
        load_text(HEAD + method_tail, "exp.yaml")
    return [str(e) for e in ei.value.errors]


def test_steps_sit_beside_faults_and_keep_their_fields() -> None:
    v = load_text(HEAD + """\
    revert: {argv: [systemctl, restart, model-server], timeout: 30s}
  - step: command
    name: restart
    argv: [systemctl, restart, model-server]
    at: 500ms
    env: {PORT: 8080, DEBUG: true}
    cwd: /tmp
    expect_exit: 3
  - {step: command, argv: [feast, materialize-incremental, now], when: fault-removed, of: pause}
  - {step: command, argv: [echo], when: recovery}
""", "exp.yaml")
    assert [f.name for f in v.faults] == ["pause"] and len(v.steps) == 3
    assert v.faults[0].revert.argv == ["systemctl", "restart", "model-server"] and v.faults[0].revert.timeout == 30
    s = v.steps[0]
    assert (s.at, s.when, s.env, s.cwd, s.expect_exit, s.timeout) == (0.5, None, {"PORT": "8080", "DEBUG": "true"},
                                                                     "/tmp", 3, 60.0)
    assert (v.steps[1].when, v.steps[1].of, v.steps[1].at) == ("fault-removed", "pause", None)
    assert v.steps[2].when == "recovery"


@pytest.mark.parametrize(("tail", "at", "expected"), [
    ("  - {step: comand, argv: [a]}\n", "comand", "method[1].step: unknown step 'comand'; did you mean 'command'?"),
    ("  - {step: command, argv: []}\n", "[]", "method[1].argv: List should have at least 1 item"),
    ("  - {step: command, argv: ['']}\n", "['']", "method[1].argv: argv[0] (the program) must not be empty"),
    ("  - {step: command, argv: [a], timeout: 0s}\n", "0s", "method[1].timeout: timeout must be above 0"),
    ("  - {step: command, argv: [a], at: 1s, when: recovery}\n", "{", "method[1]: give 'at' or 'when', not both"),
    ("  - {step: command, argv: [a], of: pause}\n", "{", "method[1]: 'of' names a fault for when: fault-removed only"),
    ("  - {step: command, argv: [a], when: removed}\n", "removed", "method[1].when: Input should be"),
    ("  - {step: command, argv: [a], when: fault-removed, of: paus}\n", "paus}",
     "method[1].of: no fault named 'paus' in method; did you mean 'pause'? (faults: pause)"),
    ("  - {step: command, argv: [a], at: 2s}\n", "2s",
     "method[1].at: step at 2s does not start inside the fault phase (2s)"),
    ("  - {step: command, argv: [a], on: recovery}\n", "on:",
     "method[1].on: YAML reads the key 'on' as true; a step runs 'when: fault-removed' or"),
    ("  - {step: command, argv: [a], shell: true}\n", "shell", "method[1].shell: unknown key 'shell'"),
    ("    revert: {argv: [a], timout: 1s}\n", "timout", "method[0].revert.timout: unknown key 'timout'; did "
     "you mean 'timeout'?"),
])
def test_step_errors_are_positioned(tail: str, at: str, expected: str) -> None:
    errs = errors(tail)
    assert errs[0].startswith(f"exp.yaml:8:{tail.index(at) + 1}: {expected}"), errs


def test_a_fault_with_a_step_field_stays_a_fault() -> None:
    """Some faults name a pipeline step (``step: train``): an item with ``fault`` is a fault, whatever else it has."""
    errs = errors("  - {fault: process-pause, pids: [1], step: x}\n")
    assert errs[0].startswith("exp.yaml:8:39: method[1].step: unknown key 'step'"), errs


def test_semantic_errors_name_each_fault_by_its_place_in_method() -> None:
    """Steps before a fault do not shift the fault's error position."""
    text = ("title: t\ntarget: {platform: http, url: 'http://127.0.0.1:9'}\nphases: {fault: 1s}\nmethod:\n"
            "  - {step: command, argv: [a]}\n"
            "  - {fault: process-pause, pids: [1], at: 3s, target: nope}\n")
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "exp.yaml")
    errs = [str(e) for e in ei.value.errors]
    assert errs[0].startswith("exp.yaml:6:43: method[1].at: fault window") and "method[1].target" in errs[1], errs


def test_the_schema_offers_the_step_beside_the_faults() -> None:
    from mlchaos.spec.schema import json_schema

    schema = json_schema()
    step = schema["$defs"]["StepSpec"]
    assert {"argv", "at", "when", "of", "timeout", "env", "cwd", "expect_exit"} <= set(step["properties"])
    assert {"$ref": "#/$defs/StepSpec"} in schema["properties"]["method"]["items"]["anyOf"]
