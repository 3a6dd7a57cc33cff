#!/usr/bin/env bash
# Build examples/cpp/ into build/example/fqvit_classify against the onnxruntime wheel of the current Python
# (python3 on PATH, e.g. .venv/bin) and the onnxruntime headers of tools/fetch_ort_headers.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
die() { echo "examples/cpp/build.sh: $*" >&2; exit 1; }
ORT_INC="$("$ROOT/tools/fetch_ort_headers.sh")" || die "no onnxruntime headers (see the message above)"
CAPI="$(python3 -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')" \
  || die "python3 has no onnxruntime (run it with the virtual environment's bin/ on PATH)"
ORT_LIB="$(ls -1 "$CAPI"/libonnxruntime.so* 2>/dev/null | head -n1)"
[[ -n "$ORT_LIB" ]] || die "no libonnxruntime.so* in $CAPI"
BUILD="$ROOT/build/example"
GEN=(); command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
[[ -f "$BUILD/CMakeCache.txt" ]] && GEN=()
cmake -S "$ROOT/examples/cpp" -B "$BUILD" "${GEN[@]}" -DORT_INCLUDE_DIR="$ORT_INC" -DORT_LIBRARY="$ORT_LIB" >/dev/null \
  || die "cmake configure failed"
cmake --build "$BUILD" >/dev/null || die "build failed"
echo "built build/example/fqvit_classify"
