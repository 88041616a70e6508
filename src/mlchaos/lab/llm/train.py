"""Training the lab's two language models from the docstrings of Python's own standard library.

The text is on every machine that runs mlchaos (nothing is downloaded): the
docstrings of the top-level ``.py`` modules of the running interpreter's
standard library, read with :mod:`ast` in file-name order, each docstring one
document.  The result depends only on that text and :data:`SEED`, so a
rebuild gives the same models on the same Python.

Two sizes, as a deployment has a primary and a cheaper fallback:
``primary`` (4096 words, 64 dimensions, 4 attention heads: a 385 × 4096
readout) and ``fallback`` (2048 words, 32 dimensions, 2 heads: 129 × 2048);
the fallback's readout costs a sixth of the primary's per token.  Both train in a few seconds on two cores
(``build.json`` records the time).
"""

from __future__ import annotations

import ast
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlchaos.lab.llm.model import F32, LanguageModel, one_blas_thread
from mlchaos.lab.llm.tokenizer import EOS, Tokenizer

SEED = 20
MAX_WORDS = 200_000
"""Words of docstrings read (about the first 160 stdlib modules); enough for a 4096-word vocabulary."""
MAX_DOC = 256
"""Long docstrings are cut into documents of at most this many tokens (attention is quadratic in training)."""

SIZES: dict[str, dict[str, Any]] = {
    "primary": {"vocab": 4096, "dim": 64, "decays": (1.0, 0.3, 0.08, 0.01)},
    "fallback": {"vocab": 2048, "dim": 32, "decays": (0.5, 0.03)},
}
TAU = 4.0
SUCC = 32
_DOCUMENTED = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
RIDGE = 1.0
HELD_OUT = 400
"""Positions kept out of the fit to choose the readout's softmax temperature."""


def stdlib_docstrings(max_words: int = MAX_WORDS) -> list[str]:
    """Docstrings of modules, classes and functions of the standard library, in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    words = 0
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        todo: list[ast.AST] = [tree]
        while todo:  # modules, classes and their functions (not ast.walk: expressions are most of a tree)
            node = todo.pop()
            doc = ast.get_docstring(node)  # type: ignore[arg-type]
            if doc:
                docs.append(doc)
                words += len(doc.split())
            if isinstance(node, ast.Module | ast.ClassDef):
                todo.extend(reversed([n for n in node.body if isinstance(n, _DOCUMENTED)]))
        if words >= max_words:
            break
    if not docs:
        raise RuntimeError(f"no docstrings found under {root}: cannot train the lab's language models")
    return docs


def _embeddings(docs: list[list[int]], vocab: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """PPMI of co-occurrences within 2 words, factored by a randomized truncated SVD; rows unit-length."""
    pairs: list[np.ndarray] = []
    for d in docs:
        a = np.asarray(d, dtype=np.int64)
        for off in (1, 2):
            if len(a) > off:
                pairs += [a[:-off] * vocab + a[off:], a[off:] * vocab + a[:-off]]
    counts = np.bincount(np.concatenate(pairs), minlength=vocab * vocab).astype(np.float64)
    m = counts.reshape(vocab, vocab).astype(F32) + F32(1e-3)
    total = m.sum()
    pmi = np.log(m * total / (m.sum(1, keepdims=True) * m.sum(0, keepdims=True)))
    ppmi = np.maximum(pmi, 0)
    # randomized SVD (Halko et al.): two power iterations are plenty for word vectors
    q = np.linalg.qr(ppmi @ rng.standard_normal((vocab, dim + 8)).astype(F32))[0]
    for _ in range(2):
        q = np.linalg.qr(ppmi @ (ppmi.T @ q))[0]
    u, s, _ = np.linalg.svd(q.T @ ppmi, full_matrices=False)
    e = (q @ u[:, :dim]) * np.sqrt(s[:dim])
    e /= np.linalg.norm(e, axis=1, keepdims=True) + 1e-6
    return e.astype(F32)


def _doc_features(model: LanguageModel, ids: list[int]) -> np.ndarray:
    """Hidden states of every position of one document (causal attention, vectorized over positions)."""
    e = model.emb[np.asarray(ids, dtype=np.int64)]                      # (n, dim)
    n = len(ids)
    pos = np.arange(n)
    dist = (pos[:, None] - pos[None, :]).astype(F32)                     # t - j
    scores = (e @ e.T) * F32(model.tau)
    logits = scores[None] - model.decays[:, None, None] * dist[None]     # (heads, n, n)
    logits[:, dist < 0] = -np.inf
    logits -= logits.max(axis=2, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=2, keepdims=True)
    heads = (w @ e).transpose(1, 0, 2).reshape(n, -1)                   # (n, heads × dim)
    prev = np.vstack([np.zeros((1, model.dim), F32), e[:-1]])
    return np.hstack([e, prev, heads, np.ones((n, 1), F32)])


def train(name: str, texts: list[str], seed: int = SEED) -> LanguageModel:
    """Fit one model size (``primary`` or ``fallback``) on ``texts``."""
    with one_blas_thread():
        return _train(name, texts, seed)


def _train(name: str, texts: list[str], seed: int) -> LanguageModel:
    cfg = SIZES[name]
    t0 = time.monotonic()
    rng = np.random.default_rng([seed, cfg["vocab"]])
    tok = Tokenizer.fit(texts, cfg["vocab"])
    docs: list[list[int]] = []
    for t in texts:
        ids = tok.encode(t)
        for i in range(0, len(ids), MAX_DOC):
            if len(ids[i:i + MAX_DOC]) > 1:
                docs.append(ids[i:i + MAX_DOC])
    emb = _embeddings(docs, len(tok), cfg["dim"], rng)
    decays = np.asarray(cfg["decays"], dtype=F32)
    hidden = (2 + len(decays)) * cfg["dim"] + 1
    succ, logp, floor = _bigrams(docs, len(tok))
    model = LanguageModel(tok, emb, np.zeros((hidden, len(tok)), np.int8), np.ones(len(tok), F32), decays, TAU, 1.0,
                          succ, logp - floor)
    gram = np.zeros((hidden, hidden), np.float64)
    cross = np.zeros((hidden, len(tok)), np.float64)
    held: list[tuple[np.ndarray, np.ndarray]] = []
    held_n = 0
    held_docs: list[list[int]] = []
    chunk: list[tuple[np.ndarray, np.ndarray]] = []

    def fit_chunk() -> None:  # large matmuls: one per ~8k positions, not one per document
        h = np.vstack([c[0] for c in chunk])
        y = np.concatenate([c[1] for c in chunk])
        chunk.clear()
        gram[:] += h.T @ h
        order = np.argsort(y, kind="stable")
        ys, starts = np.unique(y[order], return_index=True)
        cross[:, ys] += np.add.reduceat(h[order], starts, axis=0).T

    rows = 0
    for i, d in enumerate(docs):
        h = _doc_features(model, d)
        y = np.asarray([*d[1:], EOS], dtype=np.int64)                    # next token; a document ends in <eos>
        if i % 20 == 19 and held_n < HELD_OUT:                             # every 20th document is held out
            held.append((h, y))
            held_docs.append(d)
            held_n += len(y)
            continue
        chunk.append((h, y))
        rows += len(y)
        if rows >= 8192:
            fit_chunk()
            rows = 0
    if chunk:
        fit_chunk()
    gram[np.diag_indices(hidden)] += RIDGE
    model.readout_q, model.readout_scale = LanguageModel.quantize(np.linalg.solve(gram, cross).astype(F32))
    model.meta = {"name": name, "seed": seed, "vocab": len(tok), "dim": cfg["dim"], "heads": len(decays),
                  "hidden": hidden, "documents": len(docs), "tokens": int(sum(len(d) for d in docs)),
                  "held_out_tokens": held_n}
    hx = [np.asarray([EOS if j == 0 else d[j - 1] for j in range(len(y))]) for (_, y), d in zip(held, held_docs, strict=True)]
    _calibrate(model, np.vstack([h for h, _ in held]), np.concatenate([y for _, y in held]), hx, logp - floor)
    model.meta["train_seconds"] = round(time.monotonic() - t0, 3)
    return model


def _bigrams(docs: list[list[int]], vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each token's SUCC most frequent successors, their log-probabilities, and the floor (per row)."""
    a = np.concatenate([np.asarray([*d, EOS], dtype=np.int64) for d in docs])
    counts = np.bincount(a[:-1] * vocab + a[1:], minlength=vocab * vocab).reshape(vocab, vocab).astype(F32)
    succ = np.argsort(-counts, axis=1, kind="stable")[:, :SUCC].astype(np.int32)
    rows = counts.sum(axis=1, keepdims=True) + F32(vocab * 0.01)
    top = np.take_along_axis(counts, succ, axis=1)
    logp = np.log((top + F32(0.01)) / rows)
    floor = np.log(F32(0.01) / rows)
    return succ, logp.astype(F32), floor.astype(F32)


def _calibrate(model: LanguageModel, h: np.ndarray, y: np.ndarray, prev: list[np.ndarray],
               gain: np.ndarray) -> None:
    """Choose the readout scale ``beta`` and the prior's weight ``gamma`` minimising held-out
    negative log-likelihood (golden-section search on beta for each gamma of a small grid)."""
    s = h @ model.dequantized()
    last = np.concatenate(prev)
    prior = np.zeros_like(s)
    prior[np.arange(len(y))[:, None], model.successors[last]] = gain[last]

    def nll(beta: float, gamma: float) -> float:
        z = beta * s + gamma * prior
        m = z.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(y)), y]))

    best = (np.inf, 1.0, 0.0)
    g = (np.sqrt(5) - 1) / 2
    for gamma in (0.5, 1.0):  # 0 (no prior) always lost on the stdlib text
        lo, hi = 0.0, 100.0
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        fa, fb = nll(a, gamma), nll(b, gamma)
        for _ in range(10):  # golden section: one new evaluation per iteration
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - g * (hi - lo)
                fa = nll(a, gamma)
            else:
                lo, a, fa = a, b, fb
                b = lo + g * (hi - lo)
                fb = nll(b, gamma)
        best = min(best, (fa, a, gamma) if fa < fb else (fb, b, gamma))
    loss, model.beta, gamma = best
    model.bonus = (gain * gamma).astype(F32)
    model.meta.update(beta=round(float(model.beta), 3), gamma=gamma, held_out_perplexity=round(float(np.exp(loss)), 2))


def build_models(directory: Path) -> dict[str, Any]:
    """Train both sizes into ``directory/<name>.npz``; return their metadata (for ``build.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = stdlib_docstrings()
    out: dict[str, Any] = {}
    for name in ("primary", "fallback"):
        model = train(name, texts)
        model.save(directory / f"{name}.npz")
        out[name] = model.meta
    return out
