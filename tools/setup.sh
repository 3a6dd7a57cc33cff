#!/usr/bin/env bash
# One-command setup for a fresh machine (the README's setup command; .ci/run runs it too):
# a virtual environment with the pinned packages of pyproject.toml, then the com.fqvit custom-op library.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m venv .venv
.venv/bin/pip install -q -U pip
.venv/bin/pip install -q -e ".[dev]"
PATH="$PWD/.venv/bin:$PATH" tools/build_custom_ops.sh
