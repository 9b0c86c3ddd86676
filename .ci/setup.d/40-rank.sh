#!/usr/bin/env bash
# LightGBM for the learned second stage (llmcf.rerank.learned), so its tests run in CI
set -euo pipefail
"$(pwd)/.venv/bin/python" -m pip install -q -e ".[rank]"
