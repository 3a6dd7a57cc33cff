#!/usr/bin/env bash
# CI step: a clean `pip wheel .` of this tree, installed into a fresh virtual environment, runs the offline default
# job with the kernel library it ships. Prints the wheel's size and libraries, and the time of each step.
#
#   tools/check_wheel.sh            uses a copy of the tracked and untracked-but-not-ignored files (no build/, no
#                                   fqvit_export/lib/), so nothing built in this checkout leaks into the wheel
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fqvit-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
die() { echo "check_wheel.sh: $*" >&2; exit 1; }
t0=$SECONDS
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/run"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) \
  | tar -xf - -C "$WORK/src"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q -U pip
t1=$SECONDS
"$WORK/venv/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$WORK/src" || die "pip wheel failed"
t2=$SECONDS
WHEEL="$(ls -1 "$WORK"/dist/fqvit_export-*.whl)"
echo "wheel: $(basename "$WHEEL"), $(( $(stat -c %s "$WHEEL") / 1024 )) KiB, built in $((t2 - t1)) s"
python3 - "$WHEEL" <<'PY'
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = z.infolist()
    libs = [i for i in infos if i.filename.startswith("fqvit_export/lib/")]
    for i in libs:
        print(f"  {i.filename}: {i.file_size / 1024:.0f} KiB ({i.compress_size / 1024:.0f} KiB compressed)")
    print(f"  build_info: {json.loads(z.read('fqvit_export/lib/build_info.json'))['note']}")
    groups = {}
    for i in infos:
        parts = i.filename.split("/")
        key = "/".join(parts[:min(len(parts) - 1, 3)]) or "."  # the file's folder, at most 3 levels deep
        groups[key] = groups.get(key, 0) + i.compress_size
    for key, size in sorted(groups.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {key}/: {size / 1024:.0f} KiB compressed")
PY
"$WORK/venv/bin/pip" install -q "$WHEEL" || die "pip install of the wheel failed"
t3=$SECONDS
echo "installed into a fresh venv in $((t3 - t2)) s"
cd "$WORK/run"
"$WORK/venv/bin/fqvit-export" cifar10_vit --pts --lis -o m.onnx | tee export.log
t4=$SECONDS
grep -q "(custom-op library, " export.log || die "the export's parity check did not use the custom-op library"
"$WORK/venv/bin/python" - <<'PY'
import fqvit_export, fqvit_export.deploy.library as lib
path = lib.custom_ops_library()
assert path is not None and "site-packages" in str(path), path
assert all("site-packages" in p for p in fqvit_export.__path__), fqvit_export.__path__
print(f"library loaded from the installed wheel: {path}")
PY
echo "check_wheel.sh: ok (export $((t4 - t3)) s, total $((SECONDS - t0)) s)"
