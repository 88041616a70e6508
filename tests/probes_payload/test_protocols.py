"""Protocol shapes: rows of batched answers, request envelopes, and the canary's comparison rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlchaos import jsonpath
from mlchaos.probes import protocols
from mlchaos.probes.fingerprint import FingerprintSpec, differ, fingerprint
from mlchaos.probes.modelversion import ModelVersionSpec
from mlchaos.probes.predictions import PredictionsSpec

OIP = {"outputs": [{"name": "label", "shape": [3], "datatype": "INT64", "data": [1, 0, 1]},
                   {"name": "probabilities", "shape": [3, 2], "datatype": "FP64", "data": [.1, .9, .8, .2, .3, .7]}]}


def rows(doc: object, path: str) -> list[object]:
    return protocols.rows(doc, jsonpath.compile(path))


def test_rows_of_batched_answers() -> None:
    assert rows({"predictions": [0, 1, 1, 1, 0]}, "predictions[*]") == [0, 1, 1, 1, 0]
    assert rows({"predictions": [{"score": .2}, {}]}, "predictions[*].score") == [.2, None]
    assert rows({"error_code": "BAD_REQUEST"}, "predictions[*]") == [None]  # one answer, one missing row
    assert rows(OIP, "outputs[name=probabilities].data") == [[.1, .9], [.8, .2], [.3, .7]]  # shape [3, 2]
    assert rows(OIP, "outputs[name=label].data") == [1, 0, 1]
    nested = {"outputs": [{"name": "p", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}
    assert rows(nested, "outputs[0].data") == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="not a multiple"):
        rows({"outputs": [{"name": "p", "shape": [2, 2], "data": [1, 2, 3]}]}, "outputs[0].data")


def test_pick_a_column_or_the_argmax() -> None:
    probs = rows(OIP, "outputs[name=probabilities].data")
    assert [protocols.pick(r, 1, None) for r in probs] == [.9, .2, .7]
    assert [protocols.pick(r, None, "argmax") for r in probs] == [1, 0, 1]
    assert protocols.pick([.5, .5], None, "argmax") == 0  # ties: the first, like numpy
    assert protocols.pick(None, 1, None) is None
    with pytest.raises(ValueError, match="rows that are lists"):
        protocols.pick(0.3, 1, None)


def test_envelopes() -> None:
    batch = [[1.0, 2], [3.0, 4]]
    assert protocols.envelope("mlflow", batch, ["a", "b"], "x") == {
        "dataframe_split": {"columns": ["a", "b"], "data": batch}}
    assert protocols.envelope("mlflow", batch, None, "x") == {"instances": batch}
    assert protocols.envelope("mlflow", [{"a": 1}], None, "x") == {"dataframe_records": [{"a": 1}]}
    assert protocols.envelope("kserve-v1", batch, None, "x") == {"instances": batch}
    assert protocols.envelope("oip", batch, None, "in") == {"inputs": [
        {"name": "in", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2, 3.0, 4]}]}
    assert protocols.envelope("oip", [[1, "x"]], ["n", "s"], "in") == {"inputs": [
        {"name": "n", "shape": [1, 1], "datatype": "INT64", "data": [1]},
        {"name": "s", "shape": [1, 1], "datatype": "BYTES", "data": ["x"]}]}


def test_the_canary_compares_within_atol_and_hashes_rounded_answers() -> None:
    assert not differ([0.5, 1], [0.5000001, 1], 1e-6) and differ([0.5, 1], [0.6, 1], 1e-6)
    assert differ(1, True, 0) and not differ(float("nan"), float("nan"), 0)
    assert fingerprint([0.1 + 0.2], 6) == fingerprint([0.3], 6) != fingerprint([0.31], 6)
    assert fingerprint([-0.0], 6) == fingerprint([0.0], 6)


def test_protocol_defaults_and_their_errors() -> None:
    p = PredictionsSpec(probe="predictions", protocol="oip", output="probabilities", reduce="argmax", max=1)
    assert p.field == 'outputs[name="probabilities"].data'
    assert PredictionsSpec(probe="predictions", protocol="mlflow", max=1).field == "predictions[*]"
    assert PredictionsSpec(probe="predictions", max=1).field == "prediction"
    with pytest.raises(ValidationError, match="needs protocol: oip"):
        PredictionsSpec(probe="predictions", protocol="mlflow", output="x", max=1)
    f = FingerprintSpec(probe="model-fingerprint", protocol="kserve-v1", model="m", rows=[[1]], max=0)
    assert (f.url, f.field) == ("/v1/models/m:predict", "predictions[*]")
    with pytest.raises(ValidationError, match="one of body, body_file, rows, rows_file"):
        FingerprintSpec(probe="model-fingerprint", url="/x", max=0)
    with pytest.raises(ValidationError, match="needs a protocol"):
        FingerprintSpec(probe="model-fingerprint", url="/x", rows=[[1]], max=0)
    v = ModelVersionSpec(probe="model-version", protocol="mlflow", expect="3.1")
    assert (v.url, v.field, v.equals) == ("/version", None, "3.1")
    assert ModelVersionSpec(probe="model-version", url="/meta", field="model.version", stat="changed").max == 0


def test_canary_rows_from_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlchaos.plugin import ProbeError
    from mlchaos.probes.fingerprint import read_rows

    (tmp_path / "c.csv").write_text("mean radius,label\n14.2,a\n9,b\n")
    assert read_rows(str(tmp_path / "c.csv")) == ([[14.2, "a"], [9, "b"]], ["mean radius", "label"])
    (tmp_path / "c.json").write_text("[[1, 2], [3, 4]]")
    assert read_rows(str(tmp_path / "c.json")) == ([[1, 2], [3, 4]], None)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ProbeError, match=r"bad\.json: canary rows are a non-empty JSON list"):
        read_rows(str(tmp_path / "bad.json"))


def test_sampled_answers_that_are_not_strict_json() -> None:
    from mlchaos.probes.predictions import _NO_BODY, _document

    nan = _document({"status": 200, "text": '{"predictions": [NaN, 1]}'})  # what json-corrupt action: nan sends
    got = rows(nan, "predictions[*]")
    assert isinstance(got[0], float) and got[0] != got[0] and got[1] == 1  # NaN is a value, not a lost answer
    assert rows(_document({"status": 200, "text": "<html>"}), "predictions[*]") == [None]  # one row, missing
    assert _document({"status": 503, "text": "busy"}) is _NO_BODY  # the error-rate probe's business
    assert _document({"status": 200, "json": {"a": 1}}) == {"a": 1}
