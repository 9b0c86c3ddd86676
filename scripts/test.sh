#!/usr/bin/env bash
# All set-up, then lint, type-check and the whole test suite. Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export LLMCF_DATA_DIR="${LLMCF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
python -m pytest -q "$@"
