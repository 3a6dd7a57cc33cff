#!/usr/bin/env bash
# Build the com.fqvit onnxruntime custom-op libraries (custom_ops/) and copy them into fqvit_export/lib/.
#
#   tools/build_custom_ops.sh             release build into build/custom_ops/ (CPU library, plus the CUDA
#                                         variant when nvcc is found)
#   tools/build_custom_ops.sh --sanitize  ASan+UBSan build into build/custom_ops_san/ (not copied into the package)
#
# onnxruntime 1.21 headers come from tools/fetch_ort_headers.sh (ORT_INCLUDE_DIR when set, else Debian trixie's
# libonnxruntime-dev, fetched once with apt into build/ort-headers/; the system's apt configuration is untouched).
# A library built against the 1.21 headers loads in onnxruntime 1.21 .. 1.32 (docs: ../shared/FIELD-NOTES.md s2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANITIZE=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) SANITIZE=1 ;;
    -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build_custom_ops.sh: unknown argument '$arg' (expected --sanitize)" >&2; exit 2 ;;
  esac
done

die() { echo "build_custom_ops.sh: $*" >&2; exit 1; }
for tool in cmake ninja; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH (install it, e.g. pip install $tool)"
done

# --- 1. onnxruntime headers ----------------------------------------------------------------------------------------
ORT_INC="$("$ROOT/tools/fetch_ort_headers.sh")" || die "no onnxruntime headers (see the message above)"

# --- 2. configure + build ------------------------------------------------------------------------------------------
if [[ $SANITIZE == 1 ]]; then
  BUILD="$ROOT/build/custom_ops_san"; EXTRA=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFQVIT_SANITIZE=ON -DFQVIT_CUDA=OFF)
else
  BUILD="$ROOT/build/custom_ops"; EXTRA=(-DCMAKE_BUILD_TYPE=Release)
fi
if [[ ! -f "$BUILD/build.ninja" ]]; then
  cmake -S "$ROOT/custom_ops" -B "$BUILD" -G Ninja -DORT_INCLUDE_DIR="$ORT_INC" "${EXTRA[@]}" >&2 \
    || die "cmake configure failed (see the messages above)"
elif ! grep -q "ORT_INCLUDE_DIR:PATH=$ORT_INC\$" "$BUILD/CMakeCache.txt" 2>/dev/null; then
  cmake "$BUILD" -DORT_INCLUDE_DIR="$ORT_INC" >&2 || die "cmake reconfigure failed"
fi
cmake --build "$BUILD" >&2 || die "build failed (see the compiler messages above)"

# --- 3. install the release libraries into the package -------------------------------------------------------------
if [[ $SANITIZE == 0 ]]; then
  mkdir -p "$ROOT/fqvit_export/lib"
  for lib in libfqvit_ops.so libfqvit_ops_cuda.so; do
    if [[ -f "$BUILD/$lib" ]]; then
      cmp -s "$BUILD/$lib" "$ROOT/fqvit_export/lib/$lib" || cp -f "$BUILD/$lib" "$ROOT/fqvit_export/lib/$lib"
      echo "built fqvit_export/lib/$lib"
    else
      rm -f "$ROOT/fqvit_export/lib/$lib"
    fi
  done
else
  echo "built $BUILD/libfqvit_ops.so and $BUILD/kernel_test (ASan+UBSan)"
fi
