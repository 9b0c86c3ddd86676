#!/usr/bin/env bash
# optional ANN backend of llmcf.text.ann (faiss HNSW), so its test runs in CI
set -euo pipefail
"$(pwd)/.venv/bin/python" -m pip install -q -e ".[ann]"
