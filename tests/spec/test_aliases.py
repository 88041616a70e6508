"""Old spellings keep working, with a deprecation note; the new ones are what the schema shows.

Issue #18 renamed things so that each has one spelling (``error-rate``, ``keep_healthy``,
``lab_dir``).  A user's experiment written with the old spelling must still validate and
run: ``validate`` prints a note at the old spelling's position and exits 0, ``run`` prints
it as a warning line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlchaos import registry
from mlchaos.spec.loader import load_text

OLD_PROBE = """\
title: old probe name
target:
  platform: http
  url: http://127.0.0.1:9
load:
  url: http://127.0.0.1:9/
  rate: 10
steady_state:
  - probe: error_rate
    window: 2s
    max: 1%
"""


def _mlchaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], capture_output=True, text=True, timeout=120)


def test_old_probe_name_validates_with_a_note_at_its_position() -> None:
    exp = load_text(OLD_PROBE, "exp.yaml")
    assert exp.steady_state[0].probe == "error-rate"
    assert [str(n) for n in exp.notes] == [
        "exp.yaml:9:12: steady_state[0].probe: probe 'error_rate' is deprecated, write 'error-rate'"
    ]


def test_new_probe_name_has_no_note() -> None:
    assert load_text(OLD_PROBE.replace("error_rate", "error-rate"), "exp.yaml").notes == []


def test_validate_prints_the_note_on_stderr_and_exits_0(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(OLD_PROBE)
    r = _mlchaos("validate", str(f))
    assert r.returncode == 0, r.stderr
    assert f"{f}: ok" in r.stdout
    assert f"{f}:9:12: steady_state[0].probe: probe 'error_rate' is deprecated, write 'error-rate'" in r.stderr


def test_run_prints_the_note_as_a_warning_line(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text(OLD_PROBE)
    r = _mlchaos("run", "--dry-run", str(f))
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and "'error_rate' is deprecated, write 'error-rate'" in r.stderr


def test_registry_resolves_the_old_name_but_lists_only_the_new() -> None:
    assert registry.get("probe", "error_rate") is registry.get("probe", "error-rate")
    assert registry.deprecated("probe", "error_rate") == "error-rate"
    assert "error_rate" not in registry.names("probe") and "error-rate" in registry.names("probe")


def test_every_builtin_plugin_name_is_hyphenated() -> None:
    for kind, table in registry.BUILTIN.items():
        assert [n for n in table if "_" in n] == [], kind


def test_schema_shows_only_the_new_spellings() -> None:
    text = json.dumps(__import__("mlchaos.spec.schema", fromlist=["json_schema"]).json_schema())
    assert '"error-rate"' in text and '"error_rate"' not in text
    assert '"lab_dir"' in text and '"dir"' not in text
    if '"deployment-scale"' in text:  # with the [kubernetes] extra
        assert '"keep_healthy"' in text and '"keep_ready"' not in text


def test_the_loaders_return_an_experiment_and_the_old_names_still_work() -> None:
    from mlchaos.spec.experiment import Experiment
    from mlchaos.spec.loader import ValidatedExperiment
    from mlchaos.spec.model import ExperimentSpec

    exp = load_text(OLD_PROBE.replace("error_rate", "error-rate"), "exp.yaml")
    assert ValidatedExperiment is Experiment and isinstance(exp, Experiment)
    assert isinstance(exp.spec, ExperimentSpec) and exp.experiment is exp.spec  # the old attribute name
    assert exp.spec.title == "old probe name"


def test_the_runner_names_what_it_runs() -> None:
    from mlchaos.engine.runner import Runner

    exp = load_text(OLD_PROBE.replace("error_rate", "error-rate"), "exp.yaml")
    runner = Runner(exp, watchdog=False)
    try:
        assert runner.experiment is exp and runner.spec is exp.spec
        assert not hasattr(runner, "v") and not hasattr(runner, "exp")
    finally:
        runner.journal.close()


OLD_KEEP = """\
title: old blast-radius field
target:
  platform: kubernetes
  namespace: lab
steady_state:
  - {probe: k8s-deployment-available, deployment: serving, min: 1}
method:
  - fault: deployment-scale
    deployment: serving
    replicas: 1
    keep_ready: 1
    at: 1s
    duration: 2s
"""


def test_keep_ready_is_the_old_spelling_of_keep_healthy() -> None:
    import pytest

    pytest.importorskip("kubernetes", reason="the [kubernetes] extra")
    exp = load_text(OLD_KEEP, "exp.yaml")
    assert exp.faults[0].keep_healthy == 1
    assert [str(n) for n in exp.notes] == [
        "exp.yaml:11:5: method[0].keep_ready: 'keep_ready' is deprecated, write 'keep_healthy'"
    ]
    assert load_text(OLD_KEEP.replace("keep_ready", "keep_healthy"), "exp.yaml").notes == []


def test_an_error_in_a_renamed_field_points_at_the_old_key_value() -> None:
    import pytest

    from mlchaos.spec.errors import SpecErrors

    pytest.importorskip("kubernetes", reason="the [kubernetes] extra")
    with pytest.raises(SpecErrors) as ei:
        load_text(OLD_KEEP.replace("keep_ready: 1", "keep_ready: -1"), "exp.yaml")
    assert [(e.line, e.col, e.path) for e in ei.value.errors] == [(11, 17, "method[0].keep_healthy")]


def test_both_spellings_at_once_is_an_error_not_a_silent_choice() -> None:
    import pytest

    from mlchaos.spec.errors import SpecErrors

    pytest.importorskip("kubernetes", reason="the [kubernetes] extra")
    with pytest.raises(SpecErrors, match="unknown key 'keep_ready'"):
        load_text(OLD_KEEP.replace("keep_ready: 1", "keep_ready: 1\n    keep_healthy: 1"), "exp.yaml")


def test_lab_dir_flag_and_its_old_spelling(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("fastapi", reason="the [lab] extra")
    new = _mlchaos("lab", "status", "--lab-dir", str(tmp_path), "--json")
    old = _mlchaos("lab", "status", "--dir", str(tmp_path), "--json")
    assert json.loads(new.stdout)["dir"] == json.loads(old.stdout)["dir"] == str(tmp_path)
    assert (new.returncode, old.returncode) == (1, 1)  # not running, either way
    assert "deprecated" not in new.stderr
    assert "mlchaos lab: --dir is deprecated, write --lab-dir" in old.stderr
    both = _mlchaos("lab", "status", "--lab-dir", str(tmp_path), "--dir", str(tmp_path))
    assert both.returncode == 2 and "--lab-dir only" in both.stderr
    assert "--dir" not in _mlchaos("lab", "status", "--help").stdout.replace("--lab-dir", "")


def test_the_failpoint_function_and_its_module_no_longer_share_a_name() -> None:
    """``mlchaos.failpoint`` is the function, ``mlchaos.failpoints`` the module; the old module path
    still imports (with a DeprecationWarning) and leaves ``mlchaos.failpoint`` callable."""
    code = (
        "import sys, types, warnings\n"
        "import mlchaos\n"
        "assert callable(mlchaos.failpoint) and 'mlchaos.failpoint' not in sys.modules  # no shim, no warning\n"
        "import mlchaos.failpoints\n"
        "assert isinstance(mlchaos.failpoints, types.ModuleType)\n"
        "assert mlchaos.failpoint is mlchaos.failpoints.failpoint and not isinstance(mlchaos.failpoint, types.ModuleType)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    import mlchaos.failpoint\n"
        "    from mlchaos.failpoint import arm, failpoint, failpoint_dir, FailpointError\n"
        "assert any(issubclass(x.category, DeprecationWarning) and 'mlchaos.failpoints' in str(x.message) for x in w)\n"
        "assert mlchaos.failpoint is failpoint is mlchaos.failpoints.failpoint\n"
        "assert arm is mlchaos.failpoints.arm and failpoint_dir is mlchaos.failpoints.failpoint_dir\n"
        "assert mlchaos.failpoint('x', 41) == 41 and mlchaos.failpoint.arm is arm\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_callable_module_patch_is_gone() -> None:
    import mlchaos.failpoints as fps

    src = Path(fps.__file__).read_text()
    assert "_CallableModule" not in src and "__class__" not in src


def test_dir_is_the_old_spelling_of_lab_dir(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("fastapi", reason="the [lab] extra")
    text = (
        "title: old lab directory field\n"
        "target: {platform: lab, system: serving, dir: " + str(tmp_path) + "}\n"
        "steady_state:\n"
        "  - {probe: http, url: /health, equals: 200}\n"
        "method:\n"
        "  - {fault: stale-model, dir: " + str(tmp_path) + ", at: 1s, duration: 2s}\n"
    )
    exp = load_text(text, "exp.yaml")
    assert exp.targets["default"].lab_dir == exp.faults[0].lab_dir == str(tmp_path)
    assert [(n.line, n.path, n.message) for n in exp.notes] == [
        (2, "target.dir", "'dir' is deprecated, write 'lab_dir'"),
        (6, "method[0].dir", "'dir' is deprecated, write 'lab_dir'"),
    ]
    assert load_text(text.replace(" dir:", " lab_dir:"), "exp.yaml").notes == []


def test_shipped_experiments_and_docs_use_only_the_new_spellings() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    shipped = sorted((root / "src/mlchaos/examples").rglob("*.yaml")) + sorted(
        (root / "src/mlchaos/platforms/kubernetes/experiments").glob("*.yaml"))
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert shipped and docs
    old = re.compile(r"probe: *\"?error_rate|keep_ready|--dir\b|platform: lab[^}\n]*\bdir:")
    allowed = root / "docs/experiment.md"  # its "Old spellings" section names them on purpose
    offenders = [f"{p.relative_to(root)}:{i}" for p in shipped + docs if p != allowed
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if old.search(line) and "mlchaos.lab.delivery.pipeline" not in line and "old spelling" not in line]
    assert offenders == []


def test_the_delivery_pipeline_takes_lab_dir(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("sklearn", reason="the [lab] extra")

    def pipeline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlchaos.lab.delivery.pipeline", *args],
                              capture_output=True, text=True, timeout=120)

    assert "--lab-dir" in pipeline("--help").stdout and "--dir " not in pipeline("--help").stdout
    missing = pipeline("--variant", "naive")
    assert missing.returncode == 2 and "required: --lab-dir" in missing.stderr
    both = pipeline("--lab-dir", str(tmp_path), "--dir", str(tmp_path))
    assert both.returncode == 2 and "--lab-dir only" in both.stderr
