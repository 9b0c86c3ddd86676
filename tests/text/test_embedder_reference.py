"""The default embedder against reference vectors: an independent re-implementation of the
sentence-transformers recipe (tokenize, run the ONNX encoder, mean-pool over the attention
mask, L2-normalise) and vectors pinned from the packaged model (sha256-pinned in
llmcf.text.onnx), so a change of model file, tokenizer, pooling or batching fails here."""

from __future__ import annotations

import numpy as np
import pytest

from llmcf.text.embedders import make_embedder

TEXTS = ["Star Wars (1977), Action, Sci-Fi", "a gift card for a coffee shop"]
#: the first 6 coordinates of the two vectors, and their cosine, from the packaged
#: all-MiniLM-L6-v2 int8 ONNX model (recorded once; int8 kernels agree to ~1e-6 across CPUs)
PINNED = [
    [-0.055039, -0.034879, -0.017659, -0.02775, -0.017596, 0.028259],
    [-0.084962, 0.10537, 0.017753, 0.063557, -0.080471, 0.057308],
]
PINNED_COSINE = 0.023518


def _reference(model_path: str, tokenizer_path: str, texts: list[str]) -> np.ndarray:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    out = []
    for text in texts:  # one text per run: no padding to get wrong
        enc = tok.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        states = session.run(["last_hidden_state"], {k: v for k, v in feed.items() if k in names})[
            0
        ]
        mask = feed["attention_mask"][0][:, None].astype(np.float64)
        pooled = (states[0] * mask).sum(axis=0) / mask.sum()
        out.append(pooled / np.linalg.norm(pooled))
    return np.array(out)


@pytest.mark.slow
def test_minilm_equals_the_reference_recipe_and_the_pinned_vectors() -> None:
    embedder = make_embedder("minilm", threads=1)
    vectors = embedder.embed(TEXTS)  # batched together (padded) by llmcf
    ref = _reference(str(embedder.model_path), str(embedder.tokenizer_path), TEXTS)  # type: ignore[attr-defined]
    np.testing.assert_allclose(vectors, ref, atol=2e-5)
    np.testing.assert_allclose(vectors[:, :6], PINNED, atol=1e-4)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(PINNED_COSINE, abs=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
