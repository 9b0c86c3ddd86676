"""Language-model clients the re-ranker and the explainer talk to.

A client is anything that implements :class:`LLMClient` (a Protocol: pass your own in):

``yes_no(prompt) -> (n,) float``
    For a :class:`~llmcf.rerank.prompts.PointwisePrompt`, per candidate
    ``logit(Yes) - logit(No)`` of the answer token (a log-odds; higher is better).
``choice(prompt) -> (n,) float``
    For a :class:`~llmcf.rerank.prompts.ChoicePrompt`, per label (in ``prompt.labels``
    order) ``log p(label)`` of the first answer token, from one forward pass; ``-inf`` for a
    label the model gave no probability.
``complete(system, user, max_tokens) -> str``
    Free text (explanations only; never on the ranking path).

Implementations: :class:`LlamaCppClient` (a local GGUF through llama-cpp-python: every
candidate of a user in one batched decode over a shared prompt whose fixed first part stays in
the KV cache, see :mod:`llmcf.rerank.engine`) and :class:`OpenAIChatClient` (any
OpenAI-compatible ``/v1/chat/completions``: llama.cpp server, Ollama, vLLM, hosted APIs;
timeout, retries with backoff, scores from ``logprobs`` or, without them, parsed from the text).
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmcf.errors import ConfigError, LlmcfError
from llmcf.llm.http import BASE_URL_ENV, EndpointClient, EndpointError, resolve_base_url
from llmcf.rerank.prompts import ChoicePrompt, PointwisePrompt

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "LLMClient",
    "LLMError",
    "LlamaCppClient",
    "OpenAIChatClient",
    "make_llm_client",
]

#: the local ranking model: Qwen2.5-0.5B re-quantised to Q8_0 (rankings as the packaged
#: Q4_K_M file's, Spearman 0.985 on ml-100k users; ~1.2x faster prompt evaluation on x86)
DEFAULT_LOCAL_MODEL = "qwen2.5-0.5b@q8_0"

#: score of an answer token absent from the returned top log-probabilities
MISSING_LOGPROB = -30.0


class LLMError(LlmcfError, RuntimeError):
    """The language model failed (timeout, HTTP error, malformed reply)."""


@runtime_checkable
class LLMClient(Protocol):
    """What the re-ranker needs from a language model (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def yes_no(self, prompt: PointwisePrompt) -> np.ndarray: ...

    def choice(self, prompt: ChoicePrompt) -> np.ndarray: ...

    def complete(self, system: str, user: str, max_tokens: int = 60) -> str: ...


def _chatml(system: str, user: str, *, open_user: bool = False) -> str:
    """ChatML (Qwen's chat format): system turn, then the user turn; closed and followed by the
    assistant header unless ``open_user``."""
    text = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}"
    if open_user:
        return text
    return text + "<|im_end|>\n<|im_start|>assistant\n"


_ASSISTANT = "<|im_end|>\n<|im_start|>assistant\n"


class LlamaCppClient:
    """A local GGUF chat model (ChatML format, e.g. Qwen2.5 instruct) via llama-cpp-python.

    Ranking never generates text: :class:`~llmcf.rerank.engine.LlamaScorer` reads next-token
    logits only.

    ``yes_no`` (verdict-list rendering of ``pointwise-v3``): the shared prompt (system,
    fixed instruction, the user's history, the opened assistant turn) is followed by one
    branch per candidate (``"<name>:"``), all branches in one batch; score =
    ``logit(" Yes") - logit(" No")`` after each branch. ``choice``: one pass over the labelled
    list, ``log p(label)`` of the first answer token. The KV cache keeps the previous prompt,
    so the fixed system + instruction tokens are evaluated once per process.

    Args:
        model: a packaged model name (``"qwen2.5-0.5b"``, ``"qwen2.5-1.5b"``, see
            :mod:`llmcf.rerank.gguf`) or a path to a ``.gguf`` file, optionally followed by
            ``@q8_0`` or ``@q4_0``: a re-quantised copy, built once into the cache
            (:func:`~llmcf.rerank.gguf.requantize_gguf`; faster prompt evaluation on x86).
        n_threads: llama.cpp threads (use 1 when other processes hold cores: 2 threads
            collapse when one core is busy); n_ctx: KV cells; n_batch: tokens per decode.
        timeout: seconds per scoring call; a decode past it is aborted (LLMError), which
            frees the model at once instead of finishing a call nobody waits for.
    """

    def __init__(
        self,
        model: str = "qwen2.5-0.5b",
        *,
        n_threads: int = 1,
        n_ctx: int = 2048,
        n_batch: int = 1024,
        seed: int = 0,
        timeout: float | None = None,
    ) -> None:
        from llmcf.rerank.engine import LlamaScorer, ScorerError
        from llmcf.rerank.gguf import PACKAGED_MODELS, REQUANT_TYPES, assemble_gguf, requantize_gguf

        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise LLMError(
                'llama-cpp-python is not installed; pip install -e ".[llm]" (compiles ~13 min)'
            ) from exc
        base, _, quant = model.rpartition("@") if "@" in model else (model, "", "")
        if quant and quant not in REQUANT_TYPES:
            raise LLMError(f"unknown quantisation @{quant}; valid: {', '.join(REQUANT_TYPES)}")
        path = assemble_gguf(base) if base in PACKAGED_MODELS else Path(base)
        if not Path(path).is_file():
            raise LLMError(
                f"model {base!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
                "nor an existing .gguf file"
            )
        if quant:
            path = requantize_gguf(path, quant)
        stem = base if base in PACKAGED_MODELS else Path(base).stem
        self._name = f"{stem}@{quant}" if quant else stem
        self.path = Path(path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.seed = seed
        self.timeout = timeout
        try:
            self._scorer = LlamaScorer(path, n_threads=n_threads, n_ctx=n_ctx, n_batch=n_batch)
        except ScorerError as exc:
            raise LLMError(str(exc)) from exc
        self._llm: Any = None  # a llama_cpp.Llama for explanations, created on first use
        self._lock = threading.Lock()
        self._yes = self._first_token(" Yes")
        self._no = self._first_token(" No")
        self._labels: dict[str, int] = {}

    @property
    def name(self) -> str:
        return f"llama.cpp:{self._name}"

    @property
    def stats(self) -> dict[str, float]:
        """The last scoring call: tokens ``evaluated`` / ``reused`` from the KV cache,
        ``decodes``, wall ``seconds`` and ``cpu_seconds`` (process time)."""
        return self._scorer.last.as_dict()

    @property
    def total_stats(self) -> dict[str, float]:
        """The same counters summed over every scoring call of this client."""
        return self._scorer.total.as_dict()

    def _tokens(self, text: str) -> list[int]:
        return self._scorer.tokenize(text)

    def _first_token(self, text: str) -> int:
        return self._tokens(text)[0]

    def _label_token(self, label: str) -> int:
        if label not in self._labels:
            tokens = self._tokens(label)
            if len(tokens) != 1:
                raise LLMError(f"choice label {label!r} is not a single token")
            self._labels[label] = tokens[0]
        return self._labels[label]

    def _branch_logits(
        self, shared: str, branches: list[str], ids: list[int], log_softmax: bool = False
    ) -> np.ndarray:
        from llmcf.rerank.engine import ScorerError

        try:
            return self._scorer.branch_logits(
                self._tokens(shared),
                [self._tokens(b) for b in branches],
                ids,
                log_softmax=log_softmax,
                timeout=self.timeout,
            )
        except ScorerError as exc:
            raise LLMError(f"{self.name}: {exc}") from exc

    def yes_no(self, prompt: PointwisePrompt) -> np.ndarray:
        if not prompt.candidates:
            return np.zeros(0)
        logits = self._branch_logits(
            _chatml(prompt.system, prompt.verdict_user),
            [prompt.verdict_prefix(j) for j in range(len(prompt.candidates))],
            [self._yes, self._no],
        )
        return logits[:, 0] - logits[:, 1]

    def choice(self, prompt: ChoicePrompt) -> np.ndarray:
        if not prompt.labels:
            return np.zeros(0)
        ids = [self._label_token(label) for label in prompt.labels]
        return self._branch_logits(
            _chatml(prompt.system, prompt.shared, open_user=True),
            [prompt.listing + _ASSISTANT],
            ids,
            log_softmax=True,
        )[0]

    def complete(self, system: str, user: str, max_tokens: int = 60) -> str:
        with self._lock:
            if self._llm is None:
                import llama_cpp

                self._llm = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    n_batch=512,
                    seed=self.seed,
                    verbose=False,
                )
            self._llm.reset()
            result = self._llm.create_completion(
                _chatml(system, user),
                max_tokens=max_tokens,
                temperature=0.0,
                stop=["<|im_end|>", "\n"],
            )
        return str(result["choices"][0]["text"]).strip()

    def complete_many(
        self, system: str, users: Sequence[str], max_tokens: int = 60, answer_prefix: str = ""
    ) -> list[str]:
        """Greedy replies to several user turns under one system prompt, decoded together
        (:meth:`~llmcf.rerank.engine.LlamaScorer.generate`): the prompts' common first tokens
        are evaluated once (and stay in the KV cache for the next call), then every prompt's
        reply grows by one token per decode. Each reply ends at the end-of-turn token or after
        ``max_tokens`` tokens. ``answer_prefix`` opens the assistant's turn (it steers the
        reply's format) and is returned as the start of every reply."""
        from llmcf.rerank.engine import ScorerError

        if not users:
            return []
        prompts = [self._tokens(_chatml(system, user) + answer_prefix) for user in users]
        shared = 0
        shortest = min(len(p) for p in prompts) - 1  # every branch keeps one token
        first = prompts[0]
        while shared < shortest and all(p[shared] == first[shared] for p in prompts):
            shared += 1
        try:
            replies = self._scorer.generate(
                first[:shared],
                [p[shared:] for p in prompts],
                max_tokens=max_tokens,
                timeout=self.timeout,
            )
        except ScorerError as exc:
            raise LLMError(f"{self.name}: {exc}") from exc
        return [(answer_prefix + self._scorer.detokenize(tokens)).strip() for tokens in replies]

    def close(self) -> None:
        """Free the scoring context and the model."""
        self._scorer.close()
        self._llm = None


class OpenAIChatClient:
    """Any OpenAI-compatible chat endpoint (``{base_url}/chat/completions``).

    Scores: ``yes_no`` sends one request per candidate with ``max_tokens=1``,
    ``logprobs=true, top_logprobs=top_logprobs`` and takes
    ``max logprob("yes"-like tokens) - max logprob("no"-like tokens)``
    (:data:`MISSING_LOGPROB` for an answer not among the top ones). When the server returns no
    log-probabilities, the reply text is parsed: "yes" -> +1, "no" -> -1, anything else raises
    :class:`LLMError`. ``choice`` reads the label tokens' log-probabilities (text fallback: the
    named label 0, others -inf).

    HTTP goes through :class:`~llmcf.llm.http.EndpointClient` (shared with the embedding
    client): every request has ``timeout`` seconds; connection errors, timeouts, HTTP 429 and
    5xx are retried ``max_retries`` times with exponential backoff (at least the server's
    ``Retry-After``); other HTTP errors raise at once. ``base_url`` None:
    ``$LLMCF_OPENAI_BASE_URL``, else ``$OPENAI_BASE_URL``; the API key comes from ``api_key``,
    else ``$LLMCF_OPENAI_API_KEY``, else ``$OPENAI_API_KEY`` (the old ``$LLMCF_LLM_API_KEY`` is
    still read, with a DeprecationWarning). ``retries=`` is the deprecated name of
    ``max_retries``. Every failure is an :class:`LLMError`.
    """

    def __init__(
        self,
        base_url: str | None,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        top_logprobs: int = 10,
        transport: Any = None,
        retries: int | None = None,
    ) -> None:
        if retries is not None:
            warnings.warn(
                "OpenAIChatClient(retries=...) is deprecated; use max_retries=...",
                DeprecationWarning,
                stacklevel=2,
            )
            max_retries = retries
        try:
            self.http = EndpointClient(
                base_url,
                api_key=api_key,
                timeout=timeout,
                max_retries=max_retries,
                backoff=backoff,
                transport=transport,
            )
        except ConfigError as exc:
            raise LLMError(str(exc)) from exc
        self.base_url = self.http.base_url
        # the name keys the re-rank cache: the base URL as given (as before the shared client)
        self._url_label = (base_url or self.base_url).rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.top_logprobs = top_logprobs

    @property
    def retries(self) -> int:
        """Deprecated alias of ``max_retries``."""
        return self.max_retries

    @property
    def name(self) -> str:
        return f"openai:{self._url_label}#{self.model}"

    def close(self) -> None:
        self.http.close()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            data = self.http.post_json("chat/completions", {"model": self.model, **payload})
        except EndpointError as exc:
            raise LLMError(str(exc)) from exc
        if not data.get("choices"):
            raise LLMError(
                f"{self.http.url('chat/completions')}: reply has no choices: {str(data)[:200]!r}"
            )
        return data

    def _first_token_logprobs(self, data: dict[str, Any]) -> list[tuple[str, float]] | None:
        try:
            content = data["choices"][0]["logprobs"]["content"]
            entry = content[0]
        except (KeyError, IndexError, TypeError):
            return None
        pairs = [(str(entry.get("token", "")), float(entry.get("logprob", -math.inf)))]
        for alt in entry.get("top_logprobs") or []:
            pairs.append((str(alt.get("token", "")), float(alt.get("logprob", -math.inf))))
        return pairs

    @staticmethod
    def _text(data: dict[str, Any]) -> str:
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            return ""

    def _ask(self, system: str, user: str, max_tokens: int, logprobs: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        if logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = self.top_logprobs
        return self._post(payload)

    def yes_no(self, prompt: PointwisePrompt) -> np.ndarray:
        out = np.empty(len(prompt.candidates))
        for j in range(len(prompt.candidates)):
            data = self._ask(prompt.system, prompt.question(j), 1, True)
            pairs = self._first_token_logprobs(data)
            if pairs is not None:
                yes = max(
                    [lp for tok, lp in pairs if tok.strip().lower() == "yes"],
                    default=MISSING_LOGPROB,
                )
                no = max(
                    [lp for tok, lp in pairs if tok.strip().lower() == "no"],
                    default=MISSING_LOGPROB,
                )
                out[j] = yes - no
                continue
            text = self._text(data).strip().lower()
            if text.startswith("yes"):
                out[j] = 1.0
            elif text.startswith("no"):
                out[j] = -1.0
            else:
                raise LLMError(f"{self.name}: expected Yes or No, got {text[:80]!r}")
        return out

    def choice(self, prompt: ChoicePrompt) -> np.ndarray:
        data = self._ask(prompt.system, prompt.user, 1, True)
        scores = np.full(len(prompt.labels), -np.inf)
        index = {label: j for j, label in enumerate(prompt.labels)}
        pairs = self._first_token_logprobs(data)
        if pairs is None:
            text = self._text(data).strip().rstrip(".").upper()
            if text in index:
                scores[index[text]] = 0.0
                return scores
            raise LLMError(f"{self.name}: expected one of the labels, got {text[:80]!r}")
        for token, lp in pairs:
            j = index.get(token.strip().rstrip("."))
            if j is not None:
                scores[j] = max(scores[j], lp)
        return scores

    def complete(self, system: str, user: str, max_tokens: int = 60) -> str:
        return self._text(self._ask(system, user, max_tokens, False)).strip()

    def complete_many(
        self, system: str, users: Sequence[str], max_tokens: int = 60, answer_prefix: str = ""
    ) -> list[str]:
        """:meth:`complete` for each user turn (one request each; the server batches).
        ``answer_prefix`` is asked for in the user turn (chat APIs cannot open the assistant's
        turn) and added to a reply that does not start with it."""
        replies = []
        for user in users:
            ask = f"{user}\nStart your answer with {answer_prefix!r}." if answer_prefix else user
            text = self.complete(system, ask, max_tokens)
            replies.append(text if text.startswith(answer_prefix) else answer_prefix + " " + text)
        return replies


def make_llm_client(
    spec: str, *, n_threads: int = 1, timeout: float = 30.0, local_timeout: float | None = None
) -> LLMClient:
    """A client from a spec: ``"local"`` (:data:`DEFAULT_LOCAL_MODEL`, or
    ``$LLMCF_LLM_LOCAL_MODEL``) / ``"local:qwen2.5-1.5b"`` / ``"local:/path.gguf"`` (each
    optionally ``@q8_0`` / ``@q4_0``), ``"openai:<base_url>#<model>"``, or ``"endpoint"``: the
    base URL from ``$LLMCF_OPENAI_BASE_URL`` (else the deprecated ``$LLMCF_LLM_URL``, else
    ``$OPENAI_BASE_URL``) and the model from ``$LLMCF_LLM_MODEL``. ``timeout``: seconds per
    HTTP request; ``local_timeout``: seconds per local scoring call (None: no limit)."""
    if spec == "local" or spec.startswith("local:"):
        model = spec.partition(":")[2] or os.environ.get(
            "LLMCF_LLM_LOCAL_MODEL", DEFAULT_LOCAL_MODEL
        )
        return LlamaCppClient(model, n_threads=n_threads, timeout=local_timeout)
    if spec == "endpoint":
        env_model = os.environ.get("LLMCF_LLM_MODEL")
        if not env_model:
            raise LLMError(
                "the endpoint re-ranker needs $LLMCF_LLM_MODEL (the model name) and "
                f"${BASE_URL_ENV[0]} (or ${BASE_URL_ENV[1]}; the base URL)"
            )
        try:
            env_url = resolve_base_url(None)
        except ConfigError as exc:
            raise LLMError(f"the endpoint re-ranker: {exc}") from exc
        return OpenAIChatClient(env_url, env_model, timeout=timeout)
    if spec.startswith("openai:"):
        url, _, model = spec[len("openai:") :].partition("#")
        if not url or not model:
            raise LLMError(f"expected openai:<base_url>#<model>, got {spec!r}")
        return OpenAIChatClient(url, model, timeout=timeout)
    raise LLMError(
        f"unknown LLM spec {spec!r}; valid: local[:model|path], endpoint, openai:<url>#<model>"
    )
