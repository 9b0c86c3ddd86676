#!/usr/bin/env bash
# browser tests (tests/browser): Debian's chromium, driven by Playwright for Python through
# executable_path (Playwright's own browser download is never used). Idempotent.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
fi
"$(pwd)/.venv/bin/python" -m pip install -q -e ".[browser]"
