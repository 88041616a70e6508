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
  form), and a softmax temperature ``beta`` chosen on held-out text;
- a sparse bigram prior: each token's 32 most frequent successors get a
  bonus (their log-probability over a floor), which fixes the local grammar
  a low-rank linear readout gets wrong (it favours "the" everywhere).

The text it writes is docstring-flavoured word salad with local grammar: good
enough to be a stream of real tokens whose timing comes from real work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlchaos.lab.llm.tokenizer import EOS, UNK, Tokenizer

F32 = np.float32
TOP_K = 20
"""Sampling keeps the 20 most likely tokens (a linear readout's long tail is noise)."""


@dataclass
class LanguageModel:
    tokenizer: Tokenizer
    emb: np.ndarray
    """(vocab, dim) float32: queries, keys and values."""
    readout: np.ndarray
    """(hidden, vocab) float32, hidden = (2 + heads) × dim + 1."""
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
        return int(self.readout.shape[0])

    # --- persistence: one .npz, no pickle (a model file must not be able to run code) ---------------
    def save(self, path: Path) -> None:
        meta = {**self.meta, "tau": self.tau, "beta": self.beta}
        with open(path, "wb") as f:
            np.savez(f, emb=self.emb, readout=self.readout, decays=self.decays, successors=self.successors,
                     bonus=self.bonus,
                     vocab=np.array(self.tokenizer.vocab), meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: Path) -> LanguageModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(Tokenizer([str(t) for t in z["vocab"]]), z["emb"].astype(F32), z["readout"].astype(F32),
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
        out: np.ndarray = (hidden @ self.readout) * F32(self.beta)
        out[np.arange(len(last))[:, None], self.successors[last]] += self.bonus[last]
        out[:, UNK] = -np.inf
        return out

    def sample(self, logits: np.ndarray, temperature: float, rng: np.random.Generator, allow_eos: bool) -> int:
        """One token from one row of logits: greedy at temperature 0, else softmax over the top k."""
        row = logits if allow_eos else np.where(np.arange(logits.shape[0]) == EOS, -np.inf, logits)
        if temperature <= 0:
            return int(np.argmax(row))
        top = np.argpartition(-row, TOP_K)[:TOP_K]
        z = row[top] / temperature
        z = np.exp(z - z.max())
        return int(top[rng.choice(TOP_K, p=z / z.sum())])
