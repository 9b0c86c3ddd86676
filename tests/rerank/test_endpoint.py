"""OpenAIChatClient against a real ``python -m llama_cpp.server`` on 127.0.0.1, plus its
reliability rules (retries, timeouts, HTTP errors)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from tests.rerank.llm_fixtures import MOVIES, require_local_model

from llmcf.rerank.clients import LLMError, OpenAIChatClient
from llmcf.rerank.prompts import choice_prompt, pointwise_prompt
from llmcf.rerank.reranker import LLMReranker, rerank


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_local_model()
    pytest.importorskip("uvicorn", reason="llama-cpp-python[server] extras are not installed")
    from llmcf.rerank.gguf import assemble_gguf

    port = _free_port()
    # a log file, not a pipe: llama.cpp's loading log would fill an unread pipe and block it
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = open(log_path, "wb")  # closed in the finally block below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(assemble_gguf("qwen2.5-0.5b")),
            "--model_alias",
            "qwen",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server exited: {tail}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("llama_cpp.server did not start within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_yes_no_from_logprobs(server: str) -> None:
    client = OpenAIChatClient(server, "qwen", timeout=120)
    scores = client.yes_no(pointwise_prompt(MOVIES["history"], MOVIES["candidates"]))
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert min(scores[1], scores[3]) > max(scores[0], scores[2])


def test_choice_and_complete(server: str) -> None:
    client = OpenAIChatClient(server, "qwen", timeout=120, top_logprobs=20)
    scores = client.choice(choice_prompt(MOVIES["history"], MOVIES["candidates"]))
    assert scores.shape == (4,) and np.isfinite(scores).any()
    text = client.complete("Answer briefly.", "Name one planet.", max_tokens=8)
    assert isinstance(text, str) and text


def test_timeout_falls_back_to_cf_order(server: str) -> None:
    client = OpenAIChatClient(server, "qwen", timeout=0.001, max_retries=1, backoff=0.01)
    with pytest.raises(LLMError, match="attempt"):
        client.complete("s", "u")
    texts = MOVIES["history"] + MOVIES["candidates"]
    res = rerank(
        LLMReranker(client, texts), np.arange(4), np.arange(4, 8), np.array([4.0, 3, 2, 1]), 0.5
    )
    assert res.was_fallback and res.items.tolist() == [4, 5, 6, 7]


def test_retries_on_server_errors_then_succeeds() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] < 3:
            return httpx.Response(503, text="busy", headers={"retry-after": "0"})
        return httpx.Response(200, json={"choices": [{"message": {"content": "Yes"}}]})

    client = OpenAIChatClient(
        "http://x/v1", "m", max_retries=2, backoff=0.0, transport=httpx.MockTransport(handler)
    )
    scores = client.yes_no(pointwise_prompt(["a"], ["b"]))
    assert scores.tolist() == [1.0] and calls["n"] == 3  # parsed from text: no logprobs


def test_client_errors_are_not_retried_and_bad_replies_raise() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(401, text="bad key")

    client = OpenAIChatClient(
        "http://x/v1", "m", max_retries=3, backoff=0.0, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(LLMError, match="401"):
        client.complete("s", "u")
    assert calls["n"] == 1

    weird = OpenAIChatClient(
        "http://x/v1",
        "m",
        transport=httpx.MockTransport(
            lambda r: httpx.Response(200, json={"choices": [{"message": {"content": "Maybe"}}]})
        ),
    )
    with pytest.raises(LLMError, match="Yes or No"):
        weird.yes_no(pointwise_prompt(["a"], ["b"]))
    empty = OpenAIChatClient(
        "http://x/v1",
        "m",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"error": "no"})),
    )
    with pytest.raises(LLMError, match="no choices"):
        empty.complete("s", "u")


def test_unreachable_endpoint() -> None:
    client = OpenAIChatClient(
        f"http://127.0.0.1:{_free_port()}/v1", "m", timeout=1, max_retries=1, backoff=0.0
    )
    with pytest.raises(LLMError, match="2 attempt"):
        client.complete("s", "u")
