#!/usr/bin/env bash
# optional ANN backend of llmcf.text.ann (faiss HNSW), so its test runs in CI
set -euo pipefail
pip install -q "faiss-cpu>=1.8"
