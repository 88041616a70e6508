"""What the serving protocols ML teams use look like on the wire: where the rows of an answer are,
how a request batch is wrapped, where a model's metadata lives.

Why a module of its own: three probes (``predictions``, ``model-fingerprint``,
``model-version``) read the same payloads, and a ``protocol:`` shortcut must
mean the same thing in each.  The shapes (as of MLflow 3, KServe 0.14, the
Open Inference Protocol v2 spec that Triton, KServe, Seldon MLServer and
BentoML speak):

* **MLflow scoring server** (``mlflow models serve``): ``POST /invocations``
  with ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``,
  ``{"dataframe_records": [{...}]}`` or ``{"instances": [[...]]}``; answers
  ``{"predictions": [0, 1, 1]}`` (one entry per row; an entry may itself be a
  list or an object).  ``GET /version`` answers the *MLflow* version as plain
  text — not the model's.
* **KServe v1**: ``POST /v1/models/{name}:predict`` with ``{"instances":
  [...]}``; answers ``{"predictions": [...]}``; ``GET /v1/models/{name}`` →
  ``{"name": ..., "ready": true}``.
* **Open Inference Protocol / KServe v2**: ``POST /v2/models/{name}/infer``
  with ``{"inputs": [{"name", "shape", "datatype", "data"}]}``; answers
  ``{"outputs": [{"name", "shape", "datatype", "data"}]}`` where ``data`` is
  the tensor flattened in row-major order and ``shape[0]`` is the batch:
  a ``[N, 2]`` probabilities tensor is N rows of 2.  ``GET
  /v2/models/{name}`` → ``{"name", "versions", "platform", "inputs",
  "outputs"}``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from mlchaos.jsonpath import JsonPath, Key

Protocol = Literal["mlflow", "kserve-v1", "oip", "kserve-v2"]

PROTOCOL_HELP = (
    "Serving protocol whose answer layout fills the defaults: 'mlflow' (MLflow /invocations) and 'kserve-v1' "
    "read every row of 'predictions[*]'; 'oip' (alias 'kserve-v2': Triton, KServe v2, MLServer, BentoML) reads "
    "'outputs[name=OUTPUT].data' split into rows by the tensor's shape (OUTPUT from 'output:', else the first "
    "output)."
)


def is_oip(protocol: str | None) -> bool:
    return protocol in ("oip", "kserve-v2")


def default_field(protocol: str | None, output: str | None) -> str | None:
    """The path to an answer's rows under a protocol (None: no protocol given)."""
    if protocol in ("mlflow", "kserve-v1"):
        return "predictions[*]"
    if is_oip(protocol):
        return f'outputs[name="{_quote(output)}"].data' if output else "outputs[0].data"
    return None


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def default_infer_path(protocol: str | None, model: str | None) -> str | None:
    if protocol == "mlflow":
        return "/invocations"
    if protocol == "kserve-v1":
        return f"/v1/models/{model}:predict" if model else None
    if is_oip(protocol):
        return f"/v2/models/{model}/infer" if model else None
    return None


def default_metadata(protocol: str | None, model: str | None) -> tuple[str, str | None] | None:
    """(path, JSON path) of where a server says which model it serves; None path: the body as text."""
    if protocol == "mlflow":
        return "/version", None  # the MLflow version the server runs, as plain text
    if protocol == "kserve-v1" and model:
        return f"/v1/models/{model}", "name"
    if is_oip(protocol) and model:
        return f"/v2/models/{model}", "versions[*]"
    return None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for d in data:
        out.extend(_flatten(d))
    return out


def split_tensor(data: Any, shape: Any) -> list[Any]:
    """The rows of an OIP tensor: ``data`` (flat, row-major, or nested) cut by ``shape[1:]``."""
    flat = _flatten(data)
    if not isinstance(shape, list) or len(shape) < 2 or not all(isinstance(d, int) and d >= 0 for d in shape):
        return flat
    width = math.prod(shape[1:])
    if width <= 1:
        return flat
    if len(flat) % width:
        raise ValueError(f"tensor data has {len(flat)} values, not a multiple of its row size {width} "
                         f"(shape {shape})")
    return [flat[i:i + width] for i in range(0, len(flat), width)]


def rows(doc: Any, path: JsonPath) -> list[Any]:
    """Every row of one answer at ``path``; a row the path cannot reach is None (counted as missing).

    Wildcards and filters flatten (``predictions[*]`` over a batch of 3 is 3 rows); a path to a
    tensor's ``data`` (an object that also has ``shape``) is split into rows by that shape.
    """
    last = path.last
    if isinstance(last, Key) and last.name == "data" and path.segments[:-1]:
        out: list[Any] = []
        for parent in path.parent.find_all(doc, missing=None):
            if isinstance(parent, dict) and "data" in parent and "shape" in parent:
                out.extend(split_tensor(parent["data"], parent["shape"]))
            elif isinstance(parent, dict) and "data" in parent:
                out.append(parent["data"])
            else:
                out.append(None)
        return out
    return path.find_all(doc, missing=None)


def pick(row: Any, column: int | None, reduce: str | None) -> Any:
    """One value from a row that is a vector (class probabilities): a column, its argmax or its max."""
    if column is None and reduce is None:
        return row
    if row is None:
        return None
    if not isinstance(row, list) or not row:
        raise ValueError(f"'column'/'reduce' need rows that are lists, got {row!r}")
    if column is not None:
        try:
            return row[column]
        except IndexError:
            raise ValueError(f"column {column} is out of range for a row of {len(row)} values") from None
    nums = [(float(v), i) for i, v in enumerate(row) if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(nums) != len(row):
        raise ValueError(f"reduce: {reduce} needs numeric rows, got {row!r}")
    best = max(nums, key=lambda t: (t[0], -t[1]))  # ties: the first (numpy's argmax)
    return best[1] if reduce == "argmax" else best[0]


def _datatype(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def envelope(protocol: str, batch: list[Any], columns: list[str] | None, input_name: str) -> Any:
    """The request body that carries ``batch`` (rows: lists, or objects) under ``protocol``."""
    records = all(isinstance(r, dict) for r in batch)
    if protocol == "mlflow":
        if records:
            return {"dataframe_records": batch}
        if columns:
            return {"dataframe_split": {"columns": columns, "data": batch}}
        return {"instances": batch}
    if protocol == "kserve-v1":
        if columns and not records:
            return {"instances": [dict(zip(columns, r, strict=True)) for r in batch]}
        return {"instances": batch}
    # OIP: one tensor [N, k], or with named columns one [N, 1] tensor per column (MLServer's pandas codec)
    if records:
        columns = columns or list(batch[0])
        batch = [[r.get(c) for c in columns] for r in batch]
    if columns:
        inputs = []
        for j, name in enumerate(columns):
            col = [r[j] for r in batch]
            inputs.append({"name": name, "shape": [len(batch), 1], "datatype": _datatype(col), "data": col})
        return {"inputs": inputs}
    flat = _flatten(batch)
    width = len(batch[0]) if batch and isinstance(batch[0], list) else 1
    return {"inputs": [{"name": input_name, "shape": [len(batch), width], "datatype": _datatype(flat),
                        "data": flat}]}
