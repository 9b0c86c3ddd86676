"""The shared OpenAI-compatible HTTP client (llmcf.llm.http) against a real local HTTP server:
retries, exponential backoff, Retry-After, error messages, the environment-variable scheme,
and both users of it (the chat client and the embedding client)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest

from llmcf.errors import ConfigError
from llmcf.llm.http import (
    EndpointClient,
    EndpointError,
    normalize_base_url,
    parse_retry_after,
    resolve_api_key,
    resolve_base_url,
)
from llmcf.rerank.clients import LLMError, OpenAIChatClient, make_llm_client
from llmcf.rerank.prompts import pointwise_prompt
from llmcf.text.embedders import EmbeddingServiceError, OpenAIEmbedder

ENV_NAMES = (
    "LLMCF_OPENAI_BASE_URL",
    "OPENAI_BASE_URL",
    "LLMCF_LLM_URL",
    "LLMCF_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "LLMCF_LLM_API_KEY",
    "LLMCF_LLM_MODEL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or str: raw text)


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each request with the next scripted reply (the last one repeats)."""

    script: ClassVar[list[Reply]] = []
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        index = len(self.seen)
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": body,
                "time": time.monotonic(),
            }
        )
        status, headers, reply = self.script[min(index, len(self.script) - 1)]
        data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server() -> Iterator[str]:
    ScriptedHandler.script = [(200, {}, {"ok": True})]
    ScriptedHandler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def script(*replies: Reply) -> None:
    ScriptedHandler.script = list(replies)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sleeps:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


OVERLOADED = (503, {}, {"error": {"message": "model overloaded", "type": "server_error"}})
CHAT_OK = {"choices": [{"message": {"content": "Yes"}}]}


# ---------------------------------------------------------------------------- retries
def test_5xx_then_success(server: str) -> None:
    script(OVERLOADED, (502, {}, "bad gateway"), (200, {}, {"value": 42}))
    sleeps = Sleeps()
    client = EndpointClient(server, max_retries=2, backoff=0.25, sleep=sleeps)
    assert client.post_json("things", {"model": "m"}) == {"value": 42}
    assert len(ScriptedHandler.seen) == 3
    assert [r["path"] for r in ScriptedHandler.seen] == ["/v1/things"] * 3
    assert ScriptedHandler.seen[0]["body"] == {"model": "m"}
    assert sleeps.delays == [0.25, 0.5]  # backoff * 2**attempt


def test_exponential_backoff_is_capped_by_max_delay(server: str) -> None:
    script(OVERLOADED)
    sleeps = Sleeps()
    client = EndpointClient(server, max_retries=5, backoff=1.0, max_delay=5.0, sleep=sleeps)
    with pytest.raises(EndpointError):
        client.post_json("x", {})
    assert sleeps.delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(ScriptedHandler.seen) == 6


def test_429_honours_retry_after(server: str) -> None:
    script((429, {"Retry-After": "3"}, {"error": {"message": "slow down"}}), (200, {}, {}))
    sleeps = Sleeps()
    client = EndpointClient(server, max_retries=1, backoff=0.01, sleep=sleeps)
    assert client.post_json("x", {}) == {}
    assert sleeps.delays == [3.0]  # the server's wait, longer than the backoff
    # a Retry-After shorter than the backoff does not shorten it
    ScriptedHandler.seen = []
    script((429, {"Retry-After": "0"}, {}), (200, {}, {}))
    sleeps.delays = []
    EndpointClient(server, max_retries=1, backoff=0.5, sleep=sleeps).post_json("x", {})
    assert sleeps.delays == [0.5]


def test_429_retry_after_really_waits(server: str) -> None:
    script((429, {"Retry-After": "1"}, {"error": {"message": "rate limited"}}), (200, {}, {}))
    client = EndpointClient(server, max_retries=1, backoff=0.0)
    assert client.post_json("x", {}) == {}
    first, second = (r["time"] for r in ScriptedHandler.seen)
    assert second - first >= 0.95


def test_retry_after_http_date_and_cap(server: str) -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(7.0)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    script((503, {"Retry-After": "3600"}, {}), (200, {}, {}))
    sleeps = Sleeps()
    EndpointClient(server, max_retries=1, max_delay=2.0, sleep=sleeps).post_json("x", {})
    assert sleeps.delays == [2.0]


def test_gives_up_naming_url_attempts_model_and_server_message(server: str) -> None:
    script(OVERLOADED)
    client = EndpointClient(server, max_retries=2, backoff=0.0)
    with pytest.raises(EndpointError) as info:
        client.post_json("chat/completions", {"model": "qwen"})
    message = str(info.value)
    assert f"{server}/v1/chat/completions" in message
    assert "3 attempts" in message and "'qwen'" in message
    assert "HTTP 503: model overloaded" in message
    assert info.value.status == 503 and info.value.attempts == 3
    assert info.value.server_message == "model overloaded"
    assert info.value.url == f"{server}/v1/chat/completions"


def test_client_errors_raise_at_once_with_the_server_message(server: str) -> None:
    script((400, {}, {"error": {"message": "context length exceeded", "code": 400}}))
    client = EndpointClient(server, max_retries=3, backoff=0.0)
    with pytest.raises(EndpointError) as info:
        client.post_json("embeddings", {"model": "e5"})
    assert str(info.value) == (
        f"{server}/v1/embeddings answered HTTP 400 for model 'e5': context length exceeded"
    )
    assert len(ScriptedHandler.seen) == 1
    script((404, {}, "no such route"))
    with pytest.raises(EndpointError, match="HTTP 404: no such route"):
        client.get_json("models")


def test_connection_errors_are_retried_and_named() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    sleeps = Sleeps()
    client = EndpointClient(url, timeout=1, max_retries=2, backoff=0.1, sleep=sleeps)
    with pytest.raises(EndpointError, match=r"/v1/x failed after 3 attempts; .*ConnectError"):
        client.post_json("x", {})
    assert sleeps.delays == [0.1, 0.2]


def test_reply_that_is_not_json(server: str) -> None:
    script((200, {}, "<html>proxy login</html>"))
    with pytest.raises(EndpointError, match=r"not JSON.*proxy login"):
        EndpointClient(server).post_json("x", {})
    script((200, {}, [1, 2]))
    with pytest.raises(EndpointError, match="not an object"):
        EndpointClient(server).post_json("x", {})


def test_bad_settings() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        EndpointClient("http://h/v1", max_retries=-1)
    with pytest.raises(ConfigError, match="timeout"):
        EndpointClient("http://h/v1", timeout=0)


# ---------------------------------------------------------------------------- URL and env
def test_base_url_rule() -> None:
    assert normalize_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert normalize_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1"
    assert normalize_base_url("https://api.openai.com/v1/") == "https://api.openai.com/v1"
    assert normalize_base_url("http://h/openai/v1beta") == "http://h/openai/v1beta"
    for bad in ("127.0.0.1:8080", "ftp://h/v1", "http://"):
        with pytest.raises(ConfigError, match="base URL"):
            normalize_base_url(bad)


def test_env_scheme_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"LLMCF_OPENAI_BASE_URL.*OPENAI_BASE_URL"):
        resolve_base_url(None)
    assert resolve_api_key(None) is None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://generic:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "generic-key")
    assert resolve_base_url(None) == "http://generic:1/v1"
    assert resolve_api_key(None) == "generic-key"
    # a general OpenAI key goes only to OpenAI or to $OPENAI_BASE_URL, never elsewhere
    assert resolve_api_key(None, "http://generic:1/v1") == "generic-key"
    assert resolve_api_key(None, "https://api.openai.com/v1") == "generic-key"
    assert resolve_api_key(None, "http://127.0.0.1:8080/v1") is None
    monkeypatch.setenv("LLMCF_LLM_URL", "http://old:2")
    monkeypatch.setenv("LLMCF_LLM_API_KEY", "old-key")
    with pytest.warns(DeprecationWarning, match=r"\$LLMCF_LLM_URL is deprecated"):
        assert resolve_base_url(None) == "http://old:2/v1"
    with pytest.warns(DeprecationWarning, match=r"\$LLMCF_LLM_API_KEY is deprecated"):
        assert resolve_api_key(None) == "old-key"
    monkeypatch.setenv("LLMCF_OPENAI_BASE_URL", "http://new:3/v1")
    monkeypatch.setenv("LLMCF_OPENAI_API_KEY", "new-key")
    assert resolve_base_url(None) == "http://new:3/v1"
    assert resolve_api_key(None) == "new-key"
    assert resolve_base_url("http://arg:4") == "http://arg:4/v1"
    assert resolve_api_key("arg-key") == "arg-key" and resolve_api_key("") is None


def test_api_key_is_sent_as_bearer(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCF_OPENAI_API_KEY", "sk-test")
    EndpointClient(server).get_json("models")
    EndpointClient(server, api_key="explicit").get_json("models")
    EndpointClient(server, api_key="").get_json("models")
    assert [r["auth"] for r in ScriptedHandler.seen] == [
        "Bearer sk-test",
        "Bearer explicit",
        None,
    ]


# ---------------------------------------------------------------------------- both users
def test_chat_and_embedding_clients_share_the_env_scheme(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMCF_OPENAI_BASE_URL", server)
    monkeypatch.setenv("LLMCF_OPENAI_API_KEY", "shared")
    chat = OpenAIChatClient(None, "chat-model")
    embedder = OpenAIEmbedder(None, "embed-model", dim=2)
    assert chat.http.base_url == embedder.http.base_url == f"{server}/v1"
    script(
        (200, {}, CHAT_OK),
        (200, {}, {"data": [{"index": 0, "embedding": [3.0, 4.0]}]}),
    )
    assert chat.yes_no(pointwise_prompt(["a"], ["b"])).tolist() == [1.0]
    np.testing.assert_allclose(embedder.embed(["text"]), [[0.6, 0.8]], rtol=1e-6)
    paths = [r["path"] for r in ScriptedHandler.seen]
    assert paths == ["/v1/chat/completions", "/v1/embeddings"]
    assert {r["auth"] for r in ScriptedHandler.seen} == {"Bearer shared"}


def test_chat_client_retries_and_reports_as_llm_error(server: str) -> None:
    script(OVERLOADED, (200, {}, CHAT_OK))
    client = OpenAIChatClient(server + "/v1", "m", max_retries=1, backoff=0.0)
    assert client.complete("s", "u") == "Yes"
    script((401, {}, {"error": {"message": "invalid api key"}}))
    with pytest.raises(LLMError, match=r"/v1/chat/completions answered HTTP 401 .*invalid api key"):
        client.complete("s", "u")


def test_embedder_errors_are_embedding_service_errors(server: str) -> None:
    script(OVERLOADED)
    embedder = OpenAIEmbedder(server, "e", max_retries=1, backoff=0.0, dim=2)
    with pytest.raises(EmbeddingServiceError) as info:
        embedder.embed(["x"])
    assert isinstance(info.value, EndpointError) and info.value.status == 503
    assert "2 attempts" in str(info.value) and "model overloaded" in str(info.value)


def test_old_names_still_work(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning, match="max_retries"):
        client = OpenAIChatClient(server, "m", retries=0)
    assert client.max_retries == client.retries == 0 and client.http.max_retries == 0
    monkeypatch.setenv("LLMCF_LLM_MODEL", "qwen")
    with pytest.raises(LLMError, match="LLMCF_OPENAI_BASE_URL"):
        make_llm_client("endpoint")
    monkeypatch.setenv("LLMCF_LLM_URL", server + "/v1")
    with pytest.warns(DeprecationWarning, match="LLMCF_LLM_URL"):
        endpoint = make_llm_client("endpoint")
    assert isinstance(endpoint, OpenAIChatClient)
    assert endpoint.name == f"openai:{server}/v1#qwen"
    monkeypatch.setenv("LLMCF_LLM_API_KEY", "legacy")
    with pytest.warns(DeprecationWarning, match="LLMCF_LLM_API_KEY"):
        keyed = OpenAIChatClient(server, "m")
    script((200, {}, CHAT_OK))
    keyed.complete("s", "u")
    assert ScriptedHandler.seen[-1]["auth"] == "Bearer legacy"
