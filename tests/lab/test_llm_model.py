"""The lab's language model without a server: tokenizer pieces, seeded training, the forward pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlchaos.lab.llm.model import LanguageModel
from mlchaos.lab.llm.scheduler import Scheduler, Sequence
from mlchaos.lab.llm.tokenizer import EOS, Tokenizer
from mlchaos.lab.llm.train import SIZES, stdlib_docstrings, train


def test_pieces_rebuild_the_text() -> None:
    tok = Tokenizer.fit(["Return the value (or None), as a list: see x."], 64)
    ids = tok.encode("return the value (or none), as a list: see x.")
    assert tok.decode(ids) == "return the value (or none), as a list: see x."
    assert "".join(tok.piece(t, p) for p, t in zip([None, *ids[:-1]], ids, strict=True)) == tok.decode(ids)
    assert tok.encode("zebra") == [0]  # unknown word


def test_training_is_seeded_and_the_model_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SIZES, "tiny", {"vocab": 512, "dim": 16, "decays": (0.5, 0.05)})
    texts = stdlib_docstrings(max_words=8000)
    a, b = train("tiny", texts), train("tiny", texts)
    for name in ("emb", "readout_q", "readout_scale", "successors", "bonus"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.beta == b.beta
    path = tmp_path / "m.npz"
    a.save(path)
    c = LanguageModel.load(path)
    assert c.tokenizer.vocab == a.tokenizer.vocab and np.array_equal(c.readout_q, a.readout_q)
    # the same seed generates the same tokens, through the scheduler's batched step
    outs = []
    for _ in range(2):
        s = Scheduler(c, lambda ev: None, kv_tokens=256, max_batch=4)
        seq = Sequence(c.tokenizer.encode("return the"), 12, temperature=1.0, seed=5, ignore_eos=True)
        s.waiting.append(seq)
        s._admit()
        while seq.finish_reason is None:
            s._step([seq])
        outs.append(seq.output)
    assert outs[0] == outs[1] and len(outs[0]) == 12 and EOS not in outs[0]
