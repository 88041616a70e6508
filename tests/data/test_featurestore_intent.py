"""Write-ahead intents of the feature-store faults (issue #16): the originals are saved before any row changes.

A runner killed half way through the change leaves an intent whose undo
record (the rows as they were) ``revert`` writes back: byte-identical store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlchaos.contract.lease import Lease
from mlchaos.faults.featurestore import MissingEntities, StaleFeatures
from mlchaos.lab import featurestore as fs
from mlchaos.lab.paths import LabPaths
from tests.data.standalone import Ctx, run
from tests.data.test_featurestore_faults import dump
from tests.lab.conftest import built_lab_dir  # noqa: F401 - the lab tests' built lab


@pytest.fixture
def sqlite_store(built_lab_dir: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    db = tmp_path / "features.sqlite"
    shutil.copy2(LabPaths(built_lab_dir).feature_db, db)
    yield str(db)


def test_intent_saves_originals_and_reverts_a_half_done_change(sqlite_store: str) -> None:
    original = dump(sqlite_store)
    fault = StaleFeatures(StaleFeatures.Spec(fault="stale-features", store=sqlite_store, count=20, seed=5), Ctx())
    undo = run(fault.intent(Lease.new("wa", 5.0)))
    assert dump(sqlite_store) == original  # planning touches nothing
    assert len(undo["entities"]) == 20 and len(undo["rows"]) == 20
    StaleFeatures.revert(dict(undo))  # killed before any change
    assert dump(sqlite_store) == original
    # killed after half the rows were changed
    store = fs.open_store(sqlite_store)
    try:
        half = store.read_rows(undo["entities"][:10])
        store.write_rows({k: {**v, "event_ts": v["event_ts"] - 7200.0} for k, v in half.items() if v is not None})
    finally:
        store.close()
    assert dump(sqlite_store) != original
    StaleFeatures.revert(dict(undo))
    StaleFeatures.revert(dict(undo))
    assert dump(sqlite_store) == original
    # inject does what the intent planned
    applied = run(fault.inject(Lease.new("wa", 5.0)))
    assert applied.undo["entities"] == undo["entities"]
    StaleFeatures.revert(applied.undo)
    assert dump(sqlite_store) == original


def test_large_intent_backup_is_removed_by_revert(sqlite_store: str) -> None:
    original = dump(sqlite_store)
    fault = MissingEntities(MissingEntities.Spec(fault="missing-entities", store=sqlite_store, fraction="50%",
                                                 seed=1), Ctx())
    undo = run(fault.intent(Lease.new("wa-big", 5.0)))
    backup = Path(undo["backup"])
    assert backup.exists() and "rows" not in undo
    MissingEntities.revert(dict(undo))
    assert dump(sqlite_store) == original and not backup.exists()
