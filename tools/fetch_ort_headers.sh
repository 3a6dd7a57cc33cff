#!/usr/bin/env bash
# Print the directory of the onnxruntime 1.21 C/C++ headers the com.fqvit library is built against, fetching them
# first when needed. Used by tools/build_custom_ops.sh, by custom_ops/CMakeLists.txt (pip's build through
# scikit-build-core) and by examples/cpp/.
#
#   ORT_INCLUDE_DIR set    use it (must hold onnxruntime_cxx_api.h)
#   otherwise              Debian trixie's libonnxruntime-dev 1.21, fetched once with apt into
#                          build/ort-headers/ (or $ORT_HEADERS_CACHE); private apt state, the system's is untouched.
# A library built against the 1.21 headers loads in onnxruntime 1.21 .. 1.32 (../shared/FIELD-NOTES.md s2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "fetch_ort_headers.sh: $*" >&2; exit 1; }

if [[ -n "${ORT_INCLUDE_DIR:-}" ]]; then
  [[ -f "$ORT_INCLUDE_DIR/onnxruntime_cxx_api.h" ]] \
    || die "ORT_INCLUDE_DIR=$ORT_INCLUDE_DIR has no onnxruntime_cxx_api.h"
  echo "$ORT_INCLUDE_DIR"
  exit 0
fi

cache="${ORT_HEADERS_CACHE:-$ROOT/build/ort-headers}"
inc="$cache/root/usr/include/onnxruntime"
if [[ -f "$inc/onnxruntime_cxx_api.h" ]]; then echo "$inc"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: set ORT_INCLUDE_DIR to onnxruntime 1.21 headers"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found: set ORT_INCLUDE_DIR to onnxruntime 1.21 headers"
deb822=(/etc/apt/sources.list.d/*.sources)
uri="$(grep -h -E '^URIs:.*debian/?$' "${deb822[@]}" 2>/dev/null | head -n1 | awk '{print $2}' || true)"
[[ -n "$uri" ]] || uri="$(grep -h -E '^URIs:' "${deb822[@]}" 2>/dev/null | head -n1 | awk '{print $2}' || true)"
# one-line format (deb [options] URI suite components), e.g. older Debian images
[[ -n "$uri" ]] || uri="$(grep -h -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
                           | sed -E 's/\[[^]]*\] //' | awk '$2 ~ /debian\/?$/ {print $2; exit}' || true)"
[[ -n "$uri" ]] || die "no Debian 'URIs:' entry under /etc/apt/sources.list.d/: set ORT_INCLUDE_DIR instead"
mkdir -p "$cache/lists/partial" "$cache/cache/archives/partial" "$cache/deb"
cat > "$cache/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
opts=(-o "Dir::Etc::SourceList=$cache/trixie.sources" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache/cache" -o Debug::NoLocking=1)
echo "fetch_ort_headers.sh: fetching onnxruntime headers (trixie libonnxruntime-dev) into $cache/" >&2
apt-get "${opts[@]}" -qq update >&2 || die "apt-get update of the private trixie source failed (network?)"
(cd "$cache/deb" && apt-get "${opts[@]}" -qq download libonnxruntime-dev >&2) \
  || die "apt-get download libonnxruntime-dev failed"
deb="$(ls -1 "$cache"/deb/libonnxruntime-dev_*.deb | head -n1)"
rm -rf "$cache/root" && dpkg-deb -x "$deb" "$cache/root"
[[ -f "$inc/onnxruntime_cxx_api.h" ]] || die "onnxruntime_cxx_api.h not found in $deb"
echo "$inc"
