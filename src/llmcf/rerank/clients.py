"""Language-model clients the re-ranker and the explainer talk to.

A client is anything that implements :class:`LLMClient` (a Protocol: pass your own in):

``yes_no(prompt) -> (n,) float``
    For a :class:`~llmcf.rerank.prompts.PointwisePrompt`, per candidate
    ``logit("Yes") - logit("No")`` of the first answer token (a log-odds; higher is better).
``choice(prompt) -> (n,) float``
    For a :class:`~llmcf.rerank.prompts.ChoicePrompt`, per label ``log p(label)`` of the first
    answer token, from one forward pass; ``-inf`` for a label the model gave no probability.
``complete(system, user, max_tokens) -> str``
    Free text (explanations only; never on the ranking path).

Implementations: :class:`LlamaCppClient` (a local GGUF through llama-cpp-python, the shared
prompt prefix evaluated once and kept in the KV cache) and :class:`OpenAIChatClient` (any
OpenAI-compatible ``/v1/chat/completions``: llama.cpp server, Ollama, vLLM, hosted APIs;
timeout, retries with backoff, scores from ``logprobs`` or, without them, parsed from the text).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from llmcf.errors import LlmcfError
from llmcf.rerank.prompts import ChoicePrompt, PointwisePrompt

__all__ = ["LLMClient", "LLMError", "LlamaCppClient", "OpenAIChatClient", "make_llm_client"]

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

    ``yes_no`` evaluates the shared prefix (system + history) once, then for each candidate
    rewinds to the end of the prefix and evaluates only the candidate's suffix: the prefix stays
    in the KV cache, so cost = prefix + sum of suffix tokens, one decode per candidate and no
    sampling. ``choice`` is a single forward pass. ``n_threads`` is a setting (use 1 when other
    processes hold cores: 2 threads collapse when one core is busy).

    Args:
        model: a packaged model name (``"qwen2.5-0.5b"``, ``"qwen2.5-1.5b"``, see
            :mod:`llmcf.rerank.gguf`) or a path to a ``.gguf`` file.
        n_threads: llama.cpp threads; n_ctx: context length.
    """

    def __init__(
        self, model: str = "qwen2.5-0.5b", *, n_threads: int = 1, n_ctx: int = 2048, seed: int = 0
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise LLMError(
                'llama-cpp-python is not installed; pip install -e ".[llm]" (compiles ~13 min)'
            ) from exc
        from llmcf.rerank.gguf import PACKAGED_MODELS, assemble_gguf

        path = assemble_gguf(model) if model in PACKAGED_MODELS else Path(model)
        if not Path(path).is_file():
            raise LLMError(
                f"model {model!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
                "nor an existing .gguf file"
            )
        self._name = model if model in PACKAGED_MODELS else Path(model).stem
        self.n_threads = n_threads
        self._llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=512,
            seed=seed,
            verbose=False,
        )
        self._lock = threading.Lock()
        self._yes = self._first_token("Yes")
        self._no = self._first_token("No")

    @property
    def name(self) -> str:
        return f"llama.cpp:{self._name}"

    def _tokens(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _first_token(self, text: str) -> int:
        return self._tokens(text)[0]

    def _eval_from(self, n_keep: int, tokens: list[int]) -> np.ndarray:
        """Rewind to ``n_keep`` cached tokens, evaluate ``tokens``, return the last logits."""
        llm = self._llm
        if n_keep + len(tokens) > llm.n_ctx():
            raise LLMError(
                f"prompt of {n_keep + len(tokens)} tokens exceeds the context of {llm.n_ctx()}"
            )
        llm.n_tokens = n_keep
        llm.eval(tokens)  # drops KV cells past n_keep, then decodes; logits of the last token
        # llama-cpp-python >= 0.3 no longer copies logits into ``scores`` unless logits_all
        # (n_ctx x vocab floats); read the last token's row straight from the context
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        return np.array(logits, dtype=np.float64)

    def yes_no(self, prompt: PointwisePrompt) -> np.ndarray:
        prefix = self._tokens(_chatml(prompt.system, prompt.shared, open_user=True))
        out = np.empty(len(prompt.suffixes))
        with self._lock:
            self._llm.reset()
            self._eval_from(0, prefix)
            for j, suffix in enumerate(prompt.suffixes):
                logits = self._eval_from(len(prefix), self._tokens(suffix + _ASSISTANT))
                out[j] = logits[self._yes] - logits[self._no]
        return out

    def choice(self, prompt: ChoicePrompt) -> np.ndarray:
        tokens = self._tokens(_chatml(prompt.system, prompt.user))
        with self._lock:
            self._llm.reset()
            logits = self._eval_from(0, tokens)
        log_probs = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
        return np.array([log_probs[self._first_token(label)] for label in prompt.labels])

    def complete(self, system: str, user: str, max_tokens: int = 60) -> str:
        with self._lock:
            self._llm.reset()
            result = self._llm.create_completion(
                _chatml(system, user),
                max_tokens=max_tokens,
                temperature=0.0,
                stop=["<|im_end|>", "\n"],
            )
        return str(result["choices"][0]["text"]).strip()  # type: ignore[index]


class OpenAIChatClient:
    """Any OpenAI-compatible chat endpoint (``{base_url}/chat/completions``).

    Scores: ``yes_no`` sends one request per candidate with ``max_tokens=1``,
    ``logprobs=true, top_logprobs=top_logprobs`` and takes
    ``max logprob("yes"-like tokens) - max logprob("no"-like tokens)``
    (:data:`MISSING_LOGPROB` for an answer not among the top ones). When the server returns no
    log-probabilities, the reply text is parsed: "yes" -> +1, "no" -> -1, anything else raises
    :class:`LLMError`. ``choice`` reads the label tokens' log-probabilities (text fallback: the
    named label 0, others -inf).

    Reliability: every request has ``timeout`` seconds; connection errors, timeouts, HTTP 429 and
    5xx are retried ``retries`` times with exponential backoff (honouring ``Retry-After``); other
    HTTP errors raise at once. The API key comes from ``api_key`` or ``$LLMCF_LLM_API_KEY``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.5,
        top_logprobs: int = 10,
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.top_logprobs = top_logprobs
        key = api_key if api_key is not None else os.environ.get("LLMCF_LLM_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    @property
    def name(self) -> str:
        return f"openai:{self.base_url}#{self.model}"

    def close(self) -> None:
        self._http.close()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = f"{self.base_url}/chat/completions"
        last: str = ""
        for attempt in range(self.retries + 1):
            retry_after: str | None = None
            try:
                response = self._http.post(url, json={"model": self.model, **payload})
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError:
                        raise LLMError(
                            f"{url}: reply is not JSON: {response.text[:200]!r}"
                        ) from None
                    if not isinstance(data, dict) or not data.get("choices"):
                        raise LLMError(f"{url}: reply has no choices: {str(data)[:200]!r}")
                    return data
                last = f"HTTP {response.status_code}: {response.text[:200]!r}"
                if response.status_code != 429 and response.status_code < 500:
                    raise LLMError(f"{url}: {last}")
                retry_after = response.headers.get("retry-after")
            if attempt < self.retries:
                delay = self.backoff * (2**attempt)
                if retry_after:
                    try:
                        delay = max(delay, min(float(retry_after), 30.0))
                    except ValueError:
                        pass
                time.sleep(delay)
        raise LLMError(f"{url}: failed after {self.retries + 1} attempt(s): {last}")

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
        out = np.empty(len(prompt.suffixes))
        for j, suffix in enumerate(prompt.suffixes):
            data = self._ask(prompt.system, prompt.shared + suffix, 1, True)
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


def make_llm_client(spec: str, *, n_threads: int = 1, timeout: float = 30.0) -> LLMClient:
    """A client from a spec: ``"local"`` / ``"local:qwen2.5-1.5b"`` / ``"local:/path.gguf"``
    or ``"openai:<base_url>#<model>"`` (env ``LLMCF_LLM_URL`` / ``LLMCF_LLM_MODEL`` fill in
    ``"endpoint"``)."""
    if spec == "local" or spec.startswith("local:"):
        model = spec.partition(":")[2] or os.environ.get("LLMCF_LLM_LOCAL_MODEL", "qwen2.5-0.5b")
        return LlamaCppClient(model, n_threads=n_threads)
    if spec == "endpoint":
        env_url = os.environ.get("LLMCF_LLM_URL")
        env_model = os.environ.get("LLMCF_LLM_MODEL")
        if not env_url or not env_model:
            raise LLMError("the endpoint re-ranker needs LLMCF_LLM_URL and LLMCF_LLM_MODEL")
        return OpenAIChatClient(env_url, env_model, timeout=timeout)
    if spec.startswith("openai:"):
        url, _, model = spec[len("openai:") :].partition("#")
        if not url or not model:
            raise LLMError(f"expected openai:<base_url>#<model>, got {spec!r}")
        return OpenAIChatClient(url, model, timeout=timeout)
    raise LLMError(
        f"unknown LLM spec {spec!r}; valid: local[:model|path], endpoint, openai:<url>#<model>"
    )
