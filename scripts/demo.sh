#!/usr/bin/env bash
# All set-up, then the end-to-end demo on MovieLens 100K (from $LLMCF_DATA_DIR, else downloaded once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export LLMCF_DATA_DIR="${LLMCF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
llmcf demo "$@"
