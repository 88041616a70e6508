"""The lab's language model: word embeddings, one multi-head causal attention layer, a linear readout.

Why this architecture (and not an n-gram table): the engine must spend real
compute per generated token that grows with the batch and with the context,
like a transformer's decode step.  Here each step, for every running
sequence, attends over that sequence's whole cached context (its *KV cache*:
one key row per context token, so the cost is O(context × dim)), and then the
batch's hidden states go through one batched matmul with the readout matrix
(O(batch × hidden × vocab)).  Training stays a few seconds of numpy on two
cores because nothing is fitted by gradient descent:

- embeddings ``E`` (vocab × dim): a truncated SVD of the positive pointwise
  mutual information of word co-occurrences (the classic count-based word
  vectors), which are also the attention's queries, keys and values;
- attention: ``heads`` heads share the query-key scores and differ by a
  recency decay (a fixed ALiBi-style bias), so each head sees a different
  span of the context: the last few words ... the whole document;
- readout ``W`` (hidden × vocab): ridge regression from the hidden state
  ``[e(x_t), e(x_{t-1}), attention heads, 1]`` to the next token (closed
  form), and a softmax temperature ``beta`` chosen on held-out text.  It is
  stored in int8 (per-column scales) and dequantized once per step for the
  whole batch, as weight-only-quantized CPU kernels (llama.cpp's) do: that
  shared per-step cost plays the part weight reads play in a GPU's decode
  step, which is why a batch of 8 costs far less than 8 steps of one;
- a sparse bigram prior: each token's 32 most frequent successors get a
  bonus (their log-probability over a floor), which fixes the local grammar
  a low-rank linear readout gets wrong (it favours "the" everywhere).

The text it writes is docstring-flavoured word salad with local grammar: good
enough to be a stream of real tokens whose timing comes from real work.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlchaos.lab.llm.tokenizer import EOS, UNK, Tokenizer

F32 = np.float32
TOP_K = 20
"""Sampling keeps the 20 most likely tokens (a linear readout's long tail is noise)."""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread here: on a shared 2-core host a second BLAS thread makes the small
    matmuls of training and decoding up to 20× slower (24 ms instead of 1 ms for a 50 × 385 Gram matrix,
    measured under load).  threadpoolctl comes with scikit-learn; without it, nothing is limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


@dataclass
class LanguageModel:
    tokenizer: Tokenizer
    emb: np.ndarray
    """(vocab, dim) float32: queries, keys and values."""
    readout_q: np.ndarray
    """(hidden, vocab) int8, hidden = (2 + heads) × dim + 1: the readout, quantized per vocabulary column."""
    readout_scale: np.ndarray
    """(vocab,) float32: column ``j`` of the readout is ``readout_q[:, j] * readout_scale[j]``."""
    decays: np.ndarray
    """(heads,) float32: each head's recency bias per token of distance."""
    tau: float
    beta: float
    successors: np.ndarray
    """(vocab, SUCC) int32: each token's most frequent next tokens (a sparse bigram prior)."""
    bonus: np.ndarray
    """(vocab, SUCC) float32: their log-probability gain over the prior's floor, already scaled by ``gamma``."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.emb.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.emb.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.readout_q.shape[0])

    # --- persistence: one .npz, no pickle (a model file must not be able to run code) ---------------
    def save(self, path: Path) -> None:
        meta = {**self.meta, "tau": self.tau, "beta": self.beta}
        with open(path, "wb") as f:
            np.savez(f, emb=self.emb, readout_q=self.readout_q, readout_scale=self.readout_scale,
                     decays=self.decays, successors=self.successors,
                     bonus=self.bonus,
                     vocab=np.array(self.tokenizer.vocab), meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: Path) -> LanguageModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(Tokenizer([str(t) for t in z["vocab"]]), z["emb"].astype(F32), z["readout_q"].astype(np.int8),
                       z["readout_scale"].astype(F32),
                       z["decays"].astype(F32), float(meta.pop("tau")), float(meta.pop("beta")),
                       z["successors"].astype(np.int32), z["bonus"].astype(F32), meta)

    # --- the forward pass ---------------------------------------------------------------------------
    def keys(self, tokens: list[int] | np.ndarray) -> np.ndarray:
        """The KV-cache rows of ``tokens`` (prefill): one key/value row per token."""
        return self.emb[np.asarray(tokens, dtype=np.int64)]

    def attend(self, query: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Causal attention of the last position over its context ``keys`` (L, dim) → (heads × dim,)."""
        n = keys.shape[0]
        scores = keys @ (query * self.tau)                                   # (L,)
        dist = np.arange(n - 1, -1, -1, dtype=F32)                           # L-1 ... 0
        logits = scores[None, :] - self.decays[:, None] * dist[None, :]     # (heads, L)
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        return (w @ keys).reshape(-1)                                        # (heads × dim,)

    def hidden_state(self, last: int, prev: int | None, keys: np.ndarray) -> np.ndarray:
        """``[e(x_t), e(x_{t-1}), heads, 1]`` for the position whose context is ``keys``."""
        e_prev = self.emb[prev] if prev is not None else np.zeros(self.dim, F32)
        return np.concatenate([self.emb[last], e_prev, self.attend(self.emb[last], keys), np.ones(1, F32)])

    def logits(self, hidden: np.ndarray, last: np.ndarray) -> np.ndarray:
        """(batch, hidden) and each row's last token → (batch, vocab): the batched readout (the step's
        dominant matmul) plus the bigram prior of the last token."""
        out: np.ndarray = (hidden @ self.dequantized()) * F32(self.beta)
        out[np.arange(len(last))[:, None], self.successors[last]] += self.bonus[last]
        out[:, UNK] = -np.inf
        return out

    def dequantized(self) -> np.ndarray:
        """The readout in float32, computed from its int8 form: done once per step, for the whole batch."""
        w = self.readout_q.astype(F32)
        w *= self.readout_scale
        return w

    @staticmethod
    def quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-column symmetric int8 quantization of a float readout."""
        scale = (np.abs(w).max(axis=0) / 127).astype(F32) + F32(1e-12)
        return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale

    def sample(self, logits: np.ndarray, temperature: np.ndarray, uniform: np.ndarray,
               allow_eos: np.ndarray) -> np.ndarray:
        """One token per row of ``logits`` (batch, vocab), vectorized over the batch: greedy where the
        temperature is 0, else drawn (with that row's ``uniform`` in [0, 1)) from the softmax of its top k."""
        logits[~allow_eos, EOS] = -np.inf
        rows = np.arange(logits.shape[0])
        top = np.argpartition(-logits, TOP_K, axis=1)[:, :TOP_K]
        vals = np.take_along_axis(logits, top, axis=1)
        greedy = temperature <= 0
        z = vals / np.where(greedy, 1.0, temperature)[:, None]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        cdf = np.cumsum(z, axis=1)
        pick = np.minimum((cdf < (uniform * cdf[:, -1])[:, None]).sum(axis=1), TOP_K - 1)
        pick = np.where(greedy, vals.argmax(axis=1), pick)
        out: np.ndarray = top[rows, pick]
        return out
