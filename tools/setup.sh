#!/usr/bin/env bash
# One-command setup for a fresh machine (the README's setup command; .ci/run runs it too): a virtual environment
# with the pinned packages of pyproject.toml and this package, whose build backend (scikit-build-core) builds the
# com.fqvit kernel library into it; then the C++ example (examples/cpp/) against the onnxruntime wheel's library.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m venv .venv
.venv/bin/pip install -q -U pip
.venv/bin/pip install -q -e ".[dev]"
PATH="$PWD/.venv/bin:$PATH" examples/cpp/build.sh
