"""Continuous batching: one decode step at a time for every running sequence, joins at step boundaries.

The shape of vLLM's scheduler, small enough to read in one sitting:

- a **waiting** queue (FIFO; bounded by ``max_waiting``, 0 = unbounded: a
  full queue refuses new requests, which the server answers with 429);
- a **running** batch, at most ``max_batch`` sequences, whose KV caches
  together hold at most ``kv_tokens`` tokens (the *KV budget*: the sum of the
  context lengths of the running sequences);
- each **step** admits waiting sequences from the head of the queue while
  they fit (prefill: their context's key rows are computed), makes room for
  the token every running sequence is about to add by **preempting** the
  newest running sequences back to the head of the queue when the budget
  would be exceeded (their cache is dropped and recomputed when readmitted,
  vLLM's "recompute" mode), then runs one batched forward pass
  (:meth:`mlchaos.lab.llm.model.LanguageModel.logits`) and samples one token
  per sequence.

It runs in its own thread so the HTTP server stays responsive; the numpy
work releases the GIL.  The model's BLAS is limited to one thread: on a
shared two-core host a second BLAS thread makes small matmuls 20× slower
(measured: 24 ms instead of 1 ms for a 50 × 385 Gram matrix under load).

**The gray failure**: :meth:`Scheduler.hang` stops the loop (no step runs,
nothing is admitted) while everything else, ``/health`` included, keeps
answering.  A hang has a lease: it lapses by itself after ``ttl`` unless
renewed, and :meth:`Scheduler.unhang` ends it at once; then the loop resumes
and the sequences that waited are served.
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlchaos.lab.llm.model import F32, LanguageModel, one_blas_thread
from mlchaos.lab.llm.tokenizer import EOS


@dataclass(eq=False)
class Sequence:
    """One request's generation: its context (prompt + output) and its KV cache."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 1.0
    seed: int = 0
    ignore_eos: bool = False
    min_tokens: int = 0
    id: int = field(default_factory=itertools.count().__next__)
    output: list[int] = field(default_factory=list)
    cache: np.ndarray | None = None
    """(capacity, dim) key/value rows; the first ``len(context)`` are filled. None while not running."""
    arrived: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    last_token_at: float | None = None
    finish_reason: str | None = None
    preemptions: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    @property
    def context_len(self) -> int:
        return len(self.prompt) + len(self.output)


Emit = Callable[[list[tuple[Sequence, int | None, str | None]]], None]
"""Receives, after each step, ``(sequence, new token or None, finish reason or None)`` for each sequence."""


class QueueFull(Exception):
    """The waiting queue holds ``max_waiting`` sequences."""


class Scheduler:
    """The engine loop.  ``submit`` and ``abort`` are thread-safe; ``emit`` is called from the loop thread."""

    def __init__(self, model: LanguageModel, emit: Emit, *, kv_tokens: int, max_batch: int,
                 max_waiting: int = 0, on_step: Callable[[Scheduler, float], None] | None = None) -> None:
        if kv_tokens < 2 or max_batch < 1 or max_waiting < 0:
            raise ValueError("kv_tokens must be >= 2, max_batch >= 1, max_waiting >= 0")
        self.model = model
        self.emit = emit
        self.kv_tokens = kv_tokens
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.on_step = on_step
        self.waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []
        self.kv_used = 0
        self.preemptions = 0
        self.steps = 0
        self.peak_running = 0
        self.peak_kv_used = 0
        """High-water marks after each step's scheduling (what the KV budget and ``max_batch`` bound)."""
        self.hangs: dict[str, float] = {}
        """Active hang leases: id → monotonic expiry."""
        self._cond = threading.Condition()
        self._aborted: set[int] = set()
        self._stop = False
        self.crashed: str | None = None
        self._thread: threading.Thread | None = None

    # --- called from other threads ------------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        """Queue ``seq``; QueueFull when the waiting queue is at ``max_waiting``; ValueError if it can never fit."""
        if seq.context_len + 1 > self.kv_tokens:
            raise ValueError(f"the prompt has {seq.context_len} tokens; the KV budget holds {self.kv_tokens}")
        with self._cond:
            if self.max_waiting and len(self.waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self.waiting)} requests waiting (--max-waiting {self.max_waiting})")
            self.waiting.append(seq)
            self._cond.notify()

    def abort(self, seq: Sequence) -> None:
        """The client went away: drop ``seq`` at the next step boundary (no-op once finished)."""
        with self._cond:
            if seq.finish_reason is None:
                self._aborted.add(seq.id)
                self._cond.notify()

    def hang(self, lease_id: str, ttl: float) -> None:
        """Stop generating until ``unhang(lease_id)`` or ``ttl`` seconds from now (renewing: call again)."""
        with self._cond:
            self.hangs[lease_id] = time.monotonic() + ttl

    def unhang(self, lease_id: str) -> bool:
        """End a hang; True if it was active.  The loop resumes at once unless another hang holds it."""
        with self._cond:
            found = self.hangs.pop(lease_id, None) is not None
            self._cond.notify()
            return found

    def hung(self) -> bool:
        with self._cond:
            return self._hung_locked(time.monotonic())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llm-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {"running": len(self.running), "waiting": len(self.waiting), "kv_used": self.kv_used,
                    "kv_tokens": self.kv_tokens, "max_batch": self.max_batch, "max_waiting": self.max_waiting,
                    "preemptions": self.preemptions, "steps": self.steps,
                    "peak_running": self.peak_running, "peak_kv_used": self.peak_kv_used, "hung": self._hung_locked(time.monotonic()),
                    "hangs": sorted(self.hangs), "crashed": self.crashed}

    # --- the loop -----------------------------------------------------------------------------------
    def _hung_locked(self, now: float) -> bool:
        for k in [k for k, t in self.hangs.items() if t <= now]:  # a lapsed lease ends the hang by itself
            del self.hangs[k]
        return bool(self.hangs)

    def _run(self) -> None:
        try:
            with one_blas_thread():
                self._loop()
        except BaseException as exc:  # a real dead loop: say so (the HTTP side lives on, as in the gray failure)
            self.crashed = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
            raise

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop:
                    now = time.monotonic()
                    if self._hung_locked(now):
                        self._cond.wait(timeout=min(self.hangs.values()) - now)
                    elif self.running or self.waiting or self._aborted:
                        break
                    else:
                        self._cond.wait()
                if self._stop:
                    return
                events = self._drop_aborted()
                self._admit()
                self._make_room()
                batch = list(self.running)
                self.peak_running = max(self.peak_running, len(batch))
                self.peak_kv_used = max(self.peak_kv_used, self.kv_used + len(batch))
            t0 = time.perf_counter()
            events += self._step(batch)
            with self._cond:
                self.running = [s for s in self.running if s.finish_reason is None]
                self.kv_used = sum(s.context_len for s in self.running)
                self.steps += 1
            if events:
                self.emit(events)
            if self.on_step is not None:
                self.on_step(self, time.perf_counter() - t0)

    def _drop_aborted(self) -> list[tuple[Sequence, int | None, str | None]]:
        if not self._aborted:
            return []
        gone = [s for s in (*self.running, *self.waiting) if s.id in self._aborted]
        self.running = [s for s in self.running if s.id not in self._aborted]
        self.waiting = collections.deque(s for s in self.waiting if s.id not in self._aborted)
        self._aborted.clear()
        for s in gone:
            s.finish_reason, s.cache = "abort", None
        self.kv_used = sum(s.context_len for s in self.running)
        return [(s, None, "abort") for s in gone]

    def _admit(self) -> None:
        """FCFS: admit from the head of the queue while the head fits (never skip it: no starvation)."""
        while self.waiting and len(self.running) < self.max_batch:
            head = self.waiting[0]
            if self.kv_used + len(self.running) + head.context_len + 1 > self.kv_tokens:
                return  # it must fit with the token every running sequence (itself included) adds this step
            self.waiting.popleft()
            ctx = head.prompt + head.output
            cache = np.empty((max(2 * len(ctx), 64), self.model.dim), F32)
            cache[: len(ctx)] = self.model.keys(ctx)  # prefill (a recompute after a preemption)
            head.cache = cache
            self.running.append(head)
            self.kv_used += head.context_len

    def _make_room(self) -> None:
        """Every running sequence adds one token this step: preempt the newest until that fits."""
        while self.running and self.kv_used + len(self.running) > self.kv_tokens:
            victim = self.running.pop()
            self.kv_used -= victim.context_len
            victim.cache = None
            victim.preemptions += 1
            self.preemptions += 1
            self.waiting.appendleft(victim)

    def _step(self, batch: list[Sequence]) -> list[tuple[Sequence, int | None, str | None]]:
        """One forward pass for the whole batch and one sampled token per sequence."""
        if not batch:
            return []
        m = self.model
        hidden = np.empty((len(batch), m.hidden), F32)
        last = np.empty(len(batch), np.int64)
        for i, s in enumerate(batch):  # attention over each sequence's own cache: O(context × dim)
            n = s.context_len
            assert s.cache is not None
            k = len(s.output)
            tok = s.output[-1] if k else s.prompt[-1]
            prev = s.output[-2] if k > 1 else s.prompt[-1] if k == 1 else s.prompt[-2] if n > 1 else None
            hidden[i] = m.hidden_state(tok, prev, s.cache[:n])
            last[i] = tok
        logits = m.logits(hidden, last)  # the batched readout: O(batch × hidden × vocab)
        tokens = m.sample(logits, np.array([s.temperature for s in batch], F32),
                          np.array([s.rng.random() for s in batch]),
                          np.array([not s.ignore_eos and len(s.output) >= s.min_tokens for s in batch]))
        now = time.monotonic()
        out: list[tuple[Sequence, int | None, str | None]] = []
        for i, s in enumerate(batch):
            tok = int(tokens[i])
            if s.first_token_at is None:
                s.first_token_at = now
            s.last_token_at = now
            reason = None
            if tok == EOS:
                reason = "stop"
            else:
                n = s.context_len
                assert s.cache is not None
                if n >= s.cache.shape[0]:
                    grown = np.empty((2 * n, m.dim), F32)
                    grown[:n] = s.cache[:n]
                    s.cache = grown
                s.cache[n] = m.emb[tok]
                s.output.append(tok)
                if len(s.output) >= s.max_tokens:
                    reason = "length"
            if reason is not None:
                s.finish_reason, s.cache = reason, None
            out.append((s, None if tok == EOS else tok, reason))
        return out
