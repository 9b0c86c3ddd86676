"""A llama.cpp context for scoring: one shared prompt prefix, many short branches, one batch.

:class:`LlamaScorer` talks to llama.cpp through llama-cpp-python's C bindings (``llama_cpp``);
it never samples text. One call of :meth:`LlamaScorer.branch_logits` takes

* ``shared`` tokens, common to every branch (e.g. the fixed instructions, then a user's
  history), and
* ``branches``: short token lists that each continue ``shared`` (e.g. one candidate item and
  the answer cue each),

and returns, for the **last token of every branch**, the logits of a few requested vocabulary
ids. How the work is kept small:

* **prefix reuse**: the KV cache keeps the previous call's ``shared`` tokens; only the part
  after the longest common prefix with the new ``shared`` is evaluated. A fixed instruction
  block placed first is therefore evaluated once per process, not once per user.
* **one decode for all branches**: every shared token belongs to all sequences of a unified KV
  cache (``kv_unified``), branch j is sequence j, and all branches go into the same batch
  (``n_batch`` >= the prompt), each attending to the shared prefix and to itself only. The
  result equals evaluating ``shared + branch`` separately for every branch, up to the
  floating-point differences of llama.cpp's kernels between batch shapes (~0.1 logit).
* **logits for the branch ends only**: the output layer (a 151k x 896 matrix for Qwen2.5) runs
  for one token per branch; nothing else is materialised.
* **deadline**: an abort callback stops a decode after ``timeout`` seconds (the KV cache is
  then cleared and :class:`~llmcf.rerank.clients.LLMError` raised), so a timed-out call does
  not keep the model busy.

Cost of a call = (``shared`` tokens not in the cache) + (sum of branch lengths) token
evaluations, in ``ceil(tokens / n_batch)`` decodes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmcf.errors import LlmcfError

__all__ = ["LlamaScorer", "ScorerError", "ScorerStats"]


class ScorerError(LlmcfError, RuntimeError):
    """llama.cpp failed, the prompt does not fit, or the deadline passed."""


class ScorerStats:
    """Counters of a call (for benchmarks): tokens evaluated, reused, decodes, seconds."""

    __slots__ = ("cpu_seconds", "decodes", "evaluated", "reused", "seconds")

    def __init__(self) -> None:
        self.evaluated = 0
        self.reused = 0
        self.decodes = 0
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.__slots__}


def quiet_llama_log() -> None:
    """llama-cpp-python routes llama.cpp's log to the ``llama-cpp-python`` logger, printing
    everything until a level is set; keep errors only, unless the caller chose a level."""
    log = logging.getLogger("llama-cpp-python")
    if log.level == logging.NOTSET:
        log.setLevel(logging.ERROR)


def _load_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ScorerError(
            'llama-cpp-python is not installed; pip install -e ".[llm]" (compiles ~13 min)'
        ) from exc
    return llama_cpp


class LlamaScorer:
    """A GGUF model and one scoring context (see the module docstring).

    Args:
        path: the ``.gguf`` file.
        n_threads: threads for decoding (1 when other processes hold cores).
        n_ctx: KV cells (shared by all sequences: shared prefix + all branches of one call).
        n_batch: tokens per decode; the default holds a whole 20-candidate prompt.
        n_seq_max: sequences (branches per decode; more branches are run in groups).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_threads: int = 1,
        n_ctx: int = 2048,
        n_batch: int = 1024,
        n_seq_max: int = 32,
    ) -> None:
        lib = _load_llama_cpp()
        self._lib = lib
        self.path = Path(path)
        if not self.path.is_file():
            raise ScorerError(f"no model file at {self.path}")
        self.n_threads = int(n_threads)
        self.n_seq_max = max(1, min(int(n_seq_max), int(lib.llama_max_parallel_sequences())))
        self.n_batch = int(min(n_batch, n_ctx))
        lib.llama_backend_init()
        quiet_llama_log()
        mparams = lib.llama_model_default_params()
        self._model = lib.llama_model_load_from_file(str(self.path).encode("utf-8"), mparams)
        if not self._model:
            raise ScorerError(f"llama.cpp could not load {self.path}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = int(n_ctx)
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = self.n_seq_max
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = True  # shared-prefix cells belong to every sequence, stored once
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ScorerError("llama.cpp could not create a context")
        self.n_ctx = int(lib.llama_n_ctx(self._ctx))
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(self.n_batch, 0, self.n_seq_max)
        self._cached: list[int] = []  # shared tokens now in the KV cache (all sequences)
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._aborted = False
        # keep a reference: ctypes would free the callback while C still holds it
        self._abort_cb = lib.ggml_abort_callback(self._should_abort)
        lib.llama_set_abort_callback(self._ctx, self._abort_cb, None)
        self.last = ScorerStats()
        self.total = ScorerStats()  # summed over every call

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Free the context and the model (idempotent)."""
        lib = self._lib
        with self._lock:
            if getattr(self, "_ctx", None):
                lib.llama_batch_free(self._batch)
                lib.llama_free(self._ctx)
                self._ctx = None
            if getattr(self, "_model", None):
                lib.llama_model_free(self._model)
                self._model = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS; chat control tokens such as ``<|im_end|>`` parsed as
        special tokens: pass only sanitised item text inside prompts)."""
        data = text.encode("utf-8")
        size = len(data) + 16
        buf = (ctypes.c_int32 * size)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, True)
        if n < 0:  # pragma: no cover - the buffer holds at least one token per byte
            raise ScorerError(f"tokenizer needs {-n} tokens")
        return list(buf[:n])

    # ------------------------------------------------------------------ scoring
    def _should_abort(self, _data: Any) -> bool:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._aborted = True
            return True
        return False

    def _forget(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)
        self._cached = []

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode ``(token, pos, seq, output)`` rows; seq -1 = every sequence."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq, output) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            if seq < 0:
                batch.n_seq_id[i] = self.n_seq_max
                for s in range(self.n_seq_max):
                    batch.seq_id[i][s] = s
            else:
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
            batch.logits[i] = output
        rc = self._lib.llama_decode(self._ctx, batch)
        self.last.decodes += 1
        if rc != 0:
            self._forget()
            if self._aborted or rc == 2:
                raise ScorerError("llama.cpp decode aborted: deadline passed")
            if rc == 1:
                raise ScorerError(
                    f"prompt does not fit the context of {self.n_ctx} tokens; raise n_ctx"
                )
            raise ScorerError(f"llama_decode returned {rc}")

    def branch_logits(
        self,
        shared: Sequence[int],
        branches: Sequence[Sequence[int]],
        token_ids: Sequence[int],
        *,
        log_softmax: bool = False,
        timeout: float | None = None,
    ) -> np.ndarray:
        """``(len(branches), len(token_ids))`` logits (or log-probabilities with
        ``log_softmax``) of the next token after ``shared + branch`` for every branch."""
        shared_ids, branch_ids = _prompts(shared, branches)
        ids = np.asarray(token_ids, dtype=np.int64)
        out = np.empty((len(branch_ids), len(ids)), dtype=np.float64)
        n_shared = len(shared_ids)
        longest = max((len(b) for b in branch_ids), default=0)
        if n_shared + longest > self.n_ctx:
            raise ScorerError(
                f"prompt of {n_shared + longest} tokens exceeds the context of {self.n_ctx}"
            )
        with self._session(shared_ids, timeout) as (stats, todo):
            # group branches so that each group fits the sequences and the KV cells
            groups = self._groups(n_shared, [len(b) for b in branch_ids])
            for g, group in enumerate(groups):
                if g > 0:
                    self._lib.llama_memory_seq_rm(self._mem, -1, n_shared, -1)
                rows = list(todo)
                todo = []
                for s, j in enumerate(group):
                    branch = branch_ids[j]
                    last = len(branch) - 1
                    rows.extend((t, n_shared + k, s, k == last) for k, t in enumerate(branch))
                self._run(rows, group, ids, out, log_softmax)
                stats.evaluated += len(rows)
            self._cached = shared_ids
        return out

    @contextlib.contextmanager
    def _session(
        self, shared_ids: list[int], timeout: float | None
    ) -> Iterator[tuple[ScorerStats, list[tuple[int, int, int, bool]]]]:
        """One call's hold on the context: the lock, fresh stats (``last``, added to
        ``total``), the deadline, and the KV cache trimmed to the longest cached prefix of
        ``shared_ids``; yields the stats and the batch rows of the shared tokens still to
        decode."""
        with self._lock:
            if not self._ctx:
                raise ScorerError("the scorer is closed")
            stats = self.last = ScorerStats()
            t0, c0 = time.perf_counter(), time.process_time()
            self._deadline = None if timeout is None else time.monotonic() + timeout
            self._aborted = False
            try:
                keep = 0
                for old, new in zip(self._cached, shared_ids, strict=False):
                    if old != new:
                        break
                    keep += 1
                self._lib.llama_memory_seq_rm(self._mem, -1, keep, -1)
                self._cached = shared_ids[:keep]
                stats.reused = keep
                yield stats, [(t, keep + k, -1, False) for k, t in enumerate(shared_ids[keep:])]
            finally:
                self._deadline = None
                stats.seconds = time.perf_counter() - t0
                stats.cpu_seconds = time.process_time() - c0
                for name in ScorerStats.__slots__:
                    setattr(self.total, name, getattr(self.total, name) + getattr(stats, name))

    def _groups(self, n_shared: int, cells_per_branch: list[int]) -> list[list[int]]:
        """Branch indices in groups that fit ``n_seq_max`` sequences and the KV cells (the
        shared prefix once plus each branch's cells)."""
        groups: list[list[int]] = [[]]
        cells = n_shared
        for j, need in enumerate(cells_per_branch):
            if len(groups[-1]) >= self.n_seq_max or cells + need > self.n_ctx:
                groups.append([])
                cells = n_shared
            groups[-1].append(j)
            cells += need
        return groups

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` (special tokens rendered as text, e.g. ``<|im_end|>``)."""
        ids = (ctypes.c_int32 * max(1, len(tokens)))(*[int(t) for t in tokens])
        size = 8 * len(tokens) + 16
        buf = ctypes.create_string_buffer(size)
        n = self._lib.llama_detokenize(self._vocab, ids, len(tokens), buf, size, False, True)
        if n < 0:  # pragma: no cover - 8 bytes per token hold every Qwen token
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_detokenize(self._vocab, ids, len(tokens), buf, -n, False, True)
        return bytes(buf.raw[:n]).decode("utf-8", errors="replace")

    def is_end(self, token: int) -> bool:
        """True for an end-of-generation token (``<|im_end|>``, ``<|endoftext|>``, ...)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, int(token)))

    def generate(
        self,
        shared: Sequence[int],
        branches: Sequence[Sequence[int]],
        *,
        max_tokens: int,
        timeout: float | None = None,
    ) -> list[list[int]]:
        """Greedy continuations of ``shared + branch`` for every branch, decoded together.

        Every prompt goes into the KV cache as in :meth:`branch_logits` (``shared`` once, kept
        for the next call; branch j as sequence j); then each decode appends the next token
        (the argmax of its logits) of every unfinished sequence, one row per sequence, so
        ``len(branches)`` generations cost about as many decodes as one. A sequence stops at
        an end-of-generation token (not returned) or after ``max_tokens`` tokens. Branches
        beyond ``n_seq_max`` or the KV cells (prompt + ``max_tokens`` each) run in groups.
        Returns the generated token ids per branch."""
        shared_ids, branch_ids = _prompts(shared, branches)
        if max_tokens < 1:
            raise ScorerError(f"max_tokens must be >= 1, got {max_tokens}")
        n_shared = len(shared_ids)
        need = [len(b) + max_tokens for b in branch_ids]
        if n_shared + max(need, default=0) > self.n_ctx:
            raise ScorerError(
                f"prompt and answer of {n_shared + max(need)} tokens exceed the context of "
                f"{self.n_ctx}"
            )
        out: list[list[int]] = [[] for _ in branch_ids]
        lib = self._lib
        with self._session(shared_ids, timeout) as (stats, todo):
            for group in self._groups(n_shared, need):
                lib.llama_memory_seq_rm(self._mem, -1, n_shared, -1)
                rows = list(todo)
                todo = []
                pos: dict[int, int] = {}
                for s, j in enumerate(group):
                    branch = branch_ids[j]
                    last = len(branch) - 1
                    rows.extend((t, n_shared + k, s, k == last) for k, t in enumerate(branch))
                    pos[s] = n_shared + len(branch)
                for step in range(max_tokens):
                    nxt: list[tuple[int, int, int, bool]] = []
                    for start in range(0, len(rows), self.n_batch):
                        chunk = rows[start : start + self.n_batch]
                        self._decode(chunk)
                        stats.evaluated += len(chunk)
                        for i, (_tok, _pos, s, output) in enumerate(chunk):
                            if not output:
                                continue
                            ptr = lib.llama_get_logits_ith(self._ctx, i)
                            if not ptr:  # pragma: no cover - NULL only for bad indices
                                raise ScorerError(f"no logits for batch row {i}")
                            token = int(np.ctypeslib.as_array(ptr, (self.n_vocab,)).argmax())
                            if self.is_end(token):
                                continue
                            out[group[s]].append(token)
                            if step + 1 < max_tokens:
                                nxt.append((token, pos[s], s, True))
                                pos[s] += 1
                    self._cached = shared_ids  # the shared prefix is in the cache now
                    rows = nxt
                    if not rows:
                        break
            lib.llama_memory_seq_rm(self._mem, -1, n_shared, -1)
            self._cached = shared_ids
        return out

    def _run(
        self,
        rows: list[tuple[int, int, int, bool]],
        group: list[int],
        ids: np.ndarray,
        out: np.ndarray,
        log_softmax: bool,
    ) -> None:
        """Decode ``rows`` in chunks of ``n_batch``; write branch outputs into ``out``."""
        lib = self._lib
        for start in range(0, len(rows), self.n_batch):
            chunk = rows[start : start + self.n_batch]
            self._decode(chunk)
            for i, (_tok, _pos, seq, output) in enumerate(chunk):
                if not output:
                    continue
                ptr = lib.llama_get_logits_ith(self._ctx, i)
                if not ptr:  # pragma: no cover - llama.cpp returns NULL only for bad indices
                    raise ScorerError(f"no logits for batch row {i}")
                row = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
                values = row[ids].astype(np.float64)
                if log_softmax:
                    top = float(row.max())
                    values -= top + float(np.log(np.exp(row - top).sum(dtype=np.float64)))
                out[group[seq]] = values


def _prompts(
    shared: Sequence[int], branches: Sequence[Sequence[int]]
) -> tuple[list[int], list[list[int]]]:
    """``(shared, branches)`` as int lists; a clear error for an empty prefix or branch."""
    shared_ids = [int(t) for t in shared]
    branch_ids = [[int(t) for t in b] for b in branches]
    if any(len(b) == 0 for b in branch_ids):
        raise ScorerError("every branch needs at least one token")
    if not shared_ids:
        raise ScorerError("the shared prefix is empty")
    return shared_ids, branch_ids
