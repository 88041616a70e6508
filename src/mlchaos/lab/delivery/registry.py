"""Model registry: one interface, a built-in file registry, and a factory for the MLflow adapter.

Why an interface: the delivery pipeline, the probes and the faults must not
care whether versions live in a directory or in MLflow; they register a
version (artifact + metadata + metrics + the artifact's sha256), move
aliases (``production``), fetch an artifact (optionally verifying its
checksum) and read a version's record.

Every call goes through :meth:`ModelRegistry._available` first, which is
where a registry outage is acted out for every backend alike: an armed
``delivery.registry`` failpoint makes calls fail (``unreachable``) or take
``delay_s`` seconds (``slow``); a caller with a ``deadline`` gets
:class:`RegistryUnavailable` instead of waiting past it, as a client with a
request timeout would.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlchaos.atomic import replacing, write_json_atomic
from mlchaos.lab.delivery import faultpoints


class RegistryError(RuntimeError):
    """A registry operation failed (unknown version, bad request)."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached in time."""


class ChecksumMismatch(RegistryError):
    """A fetched artifact's sha256 differs from the one recorded at registration."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelVersion:
    """One registered version: what deploy installs and what the probes judge."""

    name: str
    version: str
    artifact_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: float = 0.0

    @property
    def validation(self) -> dict[str, Any] | None:
        """The validation record stored with the version (None: never validated)."""
        v = self.metadata.get("validation")
        return v if isinstance(v, dict) else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(abc.ABC):
    """What the delivery pipeline needs from a model registry."""

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        """Seconds a caller is willing to wait for one call (None: forever, the naive client)."""

    # -- availability (the registry-outage fault acts here, for every backend) ----------------
    def _available(self, op: str) -> None:
        params = faultpoints.armed(faultpoints.REGISTRY)
        if params is None:
            return
        mode = params.get("mode")
        faultpoints.record_effect(faultpoints.REGISTRY, params, op=op)
        if mode == "slow":
            delay = float(params.get("delay_s", 5.0))
            if self.deadline is not None and delay > self.deadline:
                time.sleep(self.deadline)
                raise RegistryUnavailable(f"registry {op}: no answer within {self.deadline:g}s")
            time.sleep(delay)
            return
        raise RegistryUnavailable(f"registry {op}: connection refused")

    # -- public API ---------------------------------------------------------------------------
    def register(self, name: str, artifact: Path, *, version: str | None = None,
                 metadata: dict[str, Any] | None = None, metrics: dict[str, float] | None = None) -> ModelVersion:
        """Store ``artifact`` as a new version with its metadata, metrics and sha256."""
        self._available("register")
        return self._register(name, artifact, version, dict(metadata or {}), dict(metrics or {}))

    def get(self, name: str, version: str) -> ModelVersion:
        self._available("get")
        return self._get(name, version)

    def versions(self, name: str) -> list[ModelVersion]:
        self._available("versions")
        return self._versions(name)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._available("set_alias")
        self._set_alias(name, alias, version)

    def by_alias(self, name: str, alias: str) -> ModelVersion | None:
        self._available("by_alias")
        return self._by_alias(name, alias)

    def inspect(self, name: str, version: str) -> ModelVersion | None:
        """An observer's read (probes, reports): bypasses fault injection, None for an unknown version.

        The registry outage is a fault of the *system under test*; the
        experiment's own eyes must keep seeing the records through it.
        """
        try:
            return self._get(name, version)
        except RegistryError:
            return None

    def fetch(self, name: str, version: str, dest: Path, *, verify: bool = True) -> Path:
        """Copy the version's artifact to ``dest``; with ``verify``, raise :class:`ChecksumMismatch` on a bad copy."""
        self._available("fetch")
        mv = self._get(name, version)
        self._download(mv, dest)
        if verify:
            got = sha256_file(dest)
            if got != mv.artifact_sha256:
                dest.unlink(missing_ok=True)
                raise ChecksumMismatch(
                    f"{name} {version}: artifact sha256 {got[:12]}… != registered {mv.artifact_sha256[:12]}…")
        return dest

    # -- backend hooks ------------------------------------------------------------------------
    @abc.abstractmethod
    def _register(self, name: str, artifact: Path, version: str | None, metadata: dict[str, Any],
                  metrics: dict[str, float]) -> ModelVersion: ...

    @abc.abstractmethod
    def _get(self, name: str, version: str) -> ModelVersion: ...

    @abc.abstractmethod
    def _versions(self, name: str) -> list[ModelVersion]: ...

    @abc.abstractmethod
    def _set_alias(self, name: str, alias: str, version: str) -> None: ...

    @abc.abstractmethod
    def _by_alias(self, name: str, alias: str) -> ModelVersion | None: ...

    @abc.abstractmethod
    def _download(self, mv: ModelVersion, dest: Path) -> None: ...

    @abc.abstractmethod
    def artifact_path(self, name: str, version: str) -> Path:
        """Where the stored artifact lives, for a backend that stores it in a local directory."""

    @abc.abstractmethod
    def _rewrite_artifact(self, mv: ModelVersion, change: Any) -> str:
        """Replace the stored artifact's bytes by ``change(bytes)`` where the backend keeps them (what the
        artifact-corruption fault damages); return where that is."""

    def check(self) -> dict[str, Any]:
        """Prove the registry can be read, writing nothing (a fault's preflight)."""
        return {}


class FileRegistry(ModelRegistry):
    """The embedded default: ``<root>/<name>/<version>/{artifact.pkl,version.json}`` and ``aliases.json``.

    Writes are atomic renames and versions are allocated under an exclusive
    lock file, so step processes and probes may read while a step writes.
    """

    def __init__(self, root: Path | str, deadline: float | None = None) -> None:
        super().__init__(deadline)
        self.root = Path(root)

    def _dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def artifact_path(self, name: str, version: str) -> Path:
        return self._dir(name, version) / "artifact.pkl"

    def _next_version(self, name: str) -> str:
        existing = [p.name for p in (self.root / name).glob(f"{name}-r*") if p.is_dir()]
        nums = [int(v.rsplit("-r", 1)[1]) for v in existing if v.rsplit("-r", 1)[1].isdigit()]
        return f"{name}-r{max(nums, default=0) + 1}"

    def _register(self, name: str, artifact: Path, version: str | None, metadata: dict[str, Any],
                  metrics: dict[str, float]) -> ModelVersion:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        lock = self.root / name / ".lock"
        deadline = time.monotonic() + 10
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
                break
            except FileExistsError:
                if time.monotonic() > deadline:  # a holder that died: take the lock over
                    lock.unlink(missing_ok=True)
                time.sleep(0.02)
        try:
            v = version or self._next_version(name)
            d = self._dir(name, v)
            if (d / "version.json").exists():
                raise RegistryError(f"{name} {v} is already registered")
            d.mkdir(parents=True, exist_ok=True)
            with replacing(d / "artifact.pkl") as tmp:
                shutil.copyfile(artifact, tmp)
                sha = sha256_file(tmp)
            mv = ModelVersion(name, v, sha, metadata, metrics, [], time.time())
            write_json_atomic(d / "version.json", mv.to_dict(), mkdir=True, indent=2, default=str)
        finally:
            lock.unlink(missing_ok=True)
        _corrupt_if_armed(self, mv)
        return mv

    def _aliases(self, name: str) -> dict[str, str]:
        try:
            data = json.loads((self.root / name / "aliases.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def _get(self, name: str, version: str) -> ModelVersion:
        try:
            rec = json.loads((self._dir(name, version) / "version.json").read_text())
        except (OSError, ValueError):
            raise RegistryError(f"{name} {version}: no such version") from None
        rec["aliases"] = sorted(a for a, v in self._aliases(name).items() if v == version)
        return ModelVersion(**rec)

    def _versions(self, name: str) -> list[ModelVersion]:
        out = []
        for d in sorted((self.root / name).glob("*/version.json")):
            with contextlib.suppress(RegistryError):
                out.append(self._get(name, d.parent.name))
        return sorted(out, key=lambda m: m.created_at)

    def _set_alias(self, name: str, alias: str, version: str) -> None:
        self._get(name, version)
        aliases = self._aliases(name)
        aliases[alias] = version
        write_json_atomic(self.root / name / "aliases.json", aliases, mkdir=True, indent=2)

    def _by_alias(self, name: str, alias: str) -> ModelVersion | None:
        v = self._aliases(name).get(alias)
        return self._get(name, v) if v else None

    def _download(self, mv: ModelVersion, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.artifact_path(mv.name, mv.version), dest)

    def _rewrite_artifact(self, mv: ModelVersion, change: Any) -> str:
        path = self.artifact_path(mv.name, mv.version)
        path.write_bytes(change(path.read_bytes()))
        return str(path)

    def check(self) -> dict[str, Any]:
        return {"root": str(self.root), "exists": self.root.is_dir()}


def _corrupt_if_armed(reg: ModelRegistry, mv: ModelVersion) -> None:
    """Storage corruption after upload (the ``artifact-corrupt`` fault): the stored bytes change, the
    recorded sha256 does not, as with a bad disk, a partial sync or a tampered bucket object."""
    params = faultpoints.armed(faultpoints.ARTIFACT)
    if params is None:
        return
    where = reg._rewrite_artifact(mv, corrupter(params))
    faultpoints.record_effect(faultpoints.ARTIFACT, params, version=mv.version, path=where)


def corrupter(params: dict[str, Any]) -> Any:
    """The byte transformation of an armed ``artifact-corrupt``: ``swap`` (the ``replacement`` file's bytes),
    ``truncate`` (half the bytes) or ``bitflip`` (16 bytes inverted a third of the way in)."""
    mode = params.get("mode", "swap")
    if mode == "swap" and params.get("replacement"):
        replacement = Path(str(params["replacement"])).read_bytes()
        return lambda raw: replacement
    if mode == "truncate":
        return lambda raw: raw[: len(raw) // 2]

    def bitflip(raw: bytes) -> bytes:
        buf = bytearray(raw)
        for i in range(len(buf) // 3, min(len(buf), len(buf) // 3 + 16)):
            buf[i] ^= 0xFF
        return bytes(buf)

    return bitflip


def open_registry(kind: str, lab_dir: Path | str, *, deadline: float | None = None,
                  uri: str | None = None, tracking_uri: str | None = None) -> ModelRegistry:
    """The registry the delivery system of ``lab_dir`` uses: ``file`` (default) or ``mlflow``.

    ``mlflow``: the registry at ``uri`` (a user's server, ``http://host:5000``; default the lab's
    ``sqlite:///<lab>/delivery/mlflow.sqlite``), runs and artifacts at ``tracking_uri`` (default ``uri``).
    Opening a local SQLite store creates it (MLflow does so in its client); a preflight checks
    :func:`local_store_missing` first.
    """
    from mlchaos.lab.delivery.layout import DeliveryPaths

    paths = DeliveryPaths(lab_dir)
    if kind == "file":
        return FileRegistry(paths.registry, deadline=deadline)
    if kind == "mlflow":
        from mlchaos.lab.delivery.mlflow_registry import MlflowRegistry

        registry_uri = uri or f"sqlite:///{paths.mlflow_db}"
        return MlflowRegistry(tracking_uri or registry_uri, paths.root / "mlflow-artifacts", deadline=deadline,
                              registry_uri=registry_uri)
    raise RegistryError(f"unknown registry kind {kind!r} (file, mlflow)")


def local_store_missing(kind: str, lab_dir: Path | str, uri: str | None = None) -> Path | None:
    """The lab's local MLflow SQLite file when it does not exist yet (opening it would create it), else None."""
    from mlchaos.lab.delivery.layout import DeliveryPaths

    if kind != "mlflow":
        return None
    if uri is None:
        db = DeliveryPaths(lab_dir).mlflow_db
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])  # sqlite:////abs/path → /abs/path; sqlite:///rel → rel
    else:
        return None
    return None if db.exists() else db
