"""One HTTP client for OpenAI-compatible endpoints (chat completions, embeddings, ...).

:class:`EndpointClient` holds a base URL, an API key and a timeout, sends JSON and returns
the parsed JSON reply. It is used by :class:`~llmcf.rerank.clients.OpenAIChatClient` and
:class:`~llmcf.text.embedders.OpenAIEmbedder`, so both follow the same rules:

Base URL
    ``base_url`` argument, else ``$LLMCF_OPENAI_BASE_URL``, else (deprecated, with a
    :class:`DeprecationWarning`) ``$LLMCF_LLM_URL``, else ``$OPENAI_BASE_URL``. A URL with no
    path (``http://127.0.0.1:8080``) gets ``/v1`` appended; one with a path
    (``https://api.openai.com/v1``, ``http://host/openai/v1beta``) is used as given.
    Requests go to ``<base>/<path>``, e.g. ``<base>/chat/completions``.
API key
    ``api_key`` argument (``""``: send none), else ``$LLMCF_OPENAI_API_KEY``, else
    (deprecated) ``$LLMCF_LLM_API_KEY``, else ``$OPENAI_API_KEY``; sent as
    ``Authorization: Bearer <key>``; no header when there is none.
Retries
    Connection errors, timeouts, HTTP 429 and HTTP 5xx are retried up to ``max_retries``
    times. Before retry ``k`` (0-based) the client sleeps
    ``min(max(backoff * 2**k, retry_after), max_delay)`` seconds, where ``retry_after`` is the
    server's ``Retry-After`` header (seconds or an HTTP date; 0 when absent). Any other
    status >= 300 raises at once.
Errors
    :class:`EndpointError`, whose message names the URL, the model (when the payload has
    one), the HTTP status and the server's own message (``error.message`` of an
    OpenAI-style error body, else the start of the body); after the last retry it also says
    how many attempts were made.

httpx (a base dependency) is imported when the first client is made, not on import.
"""

from __future__ import annotations

import email.utils
import os
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from llmcf.errors import ConfigError, LlmcfError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEPRECATED_ENV",
    "EndpointClient",
    "EndpointError",
    "normalize_base_url",
    "parse_retry_after",
    "resolve_api_key",
    "resolve_base_url",
    "server_message",
]

#: where the base URL comes from when none is passed, in order (llmcf's own name first)
BASE_URL_ENV = ("LLMCF_OPENAI_BASE_URL", "OPENAI_BASE_URL")
#: where the API key comes from when none is passed, in order
API_KEY_ENV = ("LLMCF_OPENAI_API_KEY", "OPENAI_API_KEY")
#: old variable -> its replacement; still read (between the two above), with a warning
DEPRECATED_ENV = {
    "LLMCF_LLM_URL": "LLMCF_OPENAI_BASE_URL",
    "LLMCF_LLM_API_KEY": "LLMCF_OPENAI_API_KEY",
}


class EndpointError(LlmcfError, RuntimeError):
    """An OpenAI-compatible endpoint refused a request, kept failing or sent a bad reply.

    Attributes: ``url`` (the request URL), ``status`` (the last HTTP status, None for a
    connection error or timeout), ``server_message`` (what the server said), ``attempts``.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        server_message: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.server_message = server_message
        self.attempts = attempts


def _from_env(names: tuple[str, str]) -> str | None:
    """The first set variable of ``names[0]``, the deprecated alias of it, ``names[1]``."""
    primary, fallback = names
    value = os.environ.get(primary, "").strip()
    if value:
        return value
    for old, new in DEPRECATED_ENV.items():
        if new == primary and (value := os.environ.get(old, "").strip()):
            warnings.warn(
                f"${old} is deprecated; set ${new} instead", DeprecationWarning, stacklevel=4
            )
            return value
    return os.environ.get(fallback, "").strip() or None


def normalize_base_url(url: str) -> str:
    """``url`` without a trailing ``/``, with ``/v1`` appended when it has no path."""
    base = url.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"endpoint base URL must be http(s)://host[:port][/path], got {url!r} "
            "(e.g. http://127.0.0.1:8080/v1)"
        )
    return base if parts.path else base + "/v1"


def resolve_base_url(base_url: str | None = None) -> str:
    """The endpoint's base URL: ``base_url``, else the environment (module docstring)."""
    raw = base_url if base_url else _from_env(BASE_URL_ENV)
    if not raw:
        raise ConfigError(
            "no OpenAI-compatible endpoint given: pass base_url or set "
            f"${BASE_URL_ENV[0]} (or ${BASE_URL_ENV[1]})"
        )
    return normalize_base_url(raw)


def resolve_api_key(api_key: str | None = None, base_url: str | None = None) -> str | None:
    """The API key: ``api_key`` (``""`` means none), else ``$LLMCF_OPENAI_API_KEY``, else
    ``$OPENAI_API_KEY`` -- the last only for OpenAI's own host or the URL of
    ``$OPENAI_BASE_URL``, so a general OpenAI key is never sent to another server."""
    if api_key is not None:
        return api_key or None
    primary, fallback = API_KEY_ENV
    own = _from_env((primary, ""))
    if own:
        return own
    key = os.environ.get(fallback, "").strip() or None
    if key is None or base_url is None:
        return key if base_url is None else None
    openai_url = os.environ.get(BASE_URL_ENV[1], "").strip()
    host = urlsplit(base_url).hostname or ""
    same = bool(openai_url) and normalize_base_url(openai_url) == normalize_base_url(base_url)
    return key if host == "api.openai.com" or same else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def server_message(response: Any) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or "(empty body)"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class EndpointClient:
    """JSON over HTTP to one OpenAI-compatible endpoint, with retries (module docstring).

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1``; None: from the environment.
        api_key: None: from the environment; ``""``: send no key.
        timeout: seconds per request (connect, read, write and pool).
        max_retries: retries after the first attempt (0: try once).
        backoff: first retry delay in seconds, doubled at every retry.
        max_delay: no single wait is longer than this (also caps ``Retry-After``).
        headers: extra request headers.
        transport: an httpx transport (tests: ``httpx.MockTransport``).
        sleep: the function that waits between attempts (tests record the delays).

    Use :meth:`post_json` / :meth:`get_json`; :meth:`close` (or ``with``) frees the
    connection pool.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_delay: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or backoff < 0 or max_delay < 0:
            raise ConfigError(
                "an endpoint client needs timeout > 0, max_retries >= 0, backoff >= 0 and "
                f"max_delay >= 0 (got {timeout}, {max_retries}, {backoff}, {max_delay})"
            )
        import httpx

        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_delay = max_delay
        key = resolve_api_key(api_key, self.base_url)
        self.has_api_key = key is not None
        all_headers = dict(headers or {})
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx
        self._http = httpx.Client(timeout=timeout, headers=all_headers, transport=transport)
        self._sleep = sleep if sleep is not None else time.sleep

    def __repr__(self) -> str:
        return f"EndpointClient({self.base_url!r}, max_retries={self.max_retries})"

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def url(self, path: str) -> str:
        """``<base_url>/<path>``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def retry_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        delay = self.backoff * 2.0**attempt
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_delay)

    def post_json(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON to ``<base_url>/<path>``; the reply's JSON object."""
        return self.request_json("POST", path, payload)

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``<base_url>/<path>``; the reply's JSON object."""
        return self.request_json("GET", path)

    def request_json(
        self, method: str, path: str, payload: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """One request with the retry policy; raises :class:`EndpointError`."""
        httpx = self._httpx
        url = self.url(path)
        model = payload.get("model") if payload is not None else None
        for_model = f" for model {model!r}" if model else ""
        attempts = self.max_retries + 1
        problem = ""
        status: int | None = None
        message: str | None = None
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = self._http.request(
                    method, url, json=dict(payload) if payload is not None else None
                )
            except httpx.TransportError as exc:  # connection errors and timeouts
                problem = f"{type(exc).__name__}: {exc}"
                status, message = None, None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._json(response, url)
                message = server_message(response)
                problem = f"HTTP {status}: {message}"
                if not _retryable(status):
                    raise EndpointError(
                        f"{url} answered HTTP {status}{for_model}: {message}",
                        url=url,
                        status=status,
                        server_message=message,
                        attempts=attempt + 1,
                    )
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt < attempts - 1:
                self._sleep(self.retry_delay(attempt, retry_after))
        plural = "s" if attempts != 1 else ""
        raise EndpointError(
            f"{url} failed after {attempts} attempt{plural}{for_model}; last error: {problem}",
            url=url,
            status=status,
            server_message=message,
            attempts=attempts,
        )

    @staticmethod
    def _json(response: Any, url: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise EndpointError(
                f"{url} sent a reply that is not JSON (HTTP {response.status_code}): "
                f"{response.text[:200]!r}",
                url=url,
                status=response.status_code,
            ) from None
        if not isinstance(data, dict):
            raise EndpointError(
                f"{url} sent JSON that is not an object: {str(data)[:200]!r}",
                url=url,
                status=response.status_code,
            )
        return data
