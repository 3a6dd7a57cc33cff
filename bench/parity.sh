#!/usr/bin/env bash
# Parity of the exported model with the PyTorch model on all 10,000 CIFAR-10 test images:
#   bench/parity.sh [--data-dir DIR] [--custom-ops on|off] [MODEL] [extra quant options]  (default: cifar10_vit --pts --lis)
# DIR holds CIFAR-10's train/ and test/ ImageFolder trees (default ../shared/data/cifar10; or $FQVIT_DATA).
# calibrates on 1,000 train images (seed 0), exports, then evaluates PyTorch and onnxruntime on the same images and
# writes bench/results/parity_<MODEL>_<OPTIONS>.json, e.g. parity_cifar10_vit_pts_lis.json (top-1/top-5 of both, top-1 agreement, max/mean |logit difference|).
# --custom-ops off runs onnxruntime on the models' ONNX function bodies (no kernel library): ..._functions.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data="${FQVIT_DATA:-../shared/data/cifar10}"
custom_ops=on
while [[ "${1:-}" == --data-dir || "${1:-}" == --custom-ops ]]; do
  if [[ "$1" == --data-dir ]]; then data="$2"; else custom_ops="$2"; fi
  shift 2
done
[[ "$custom_ops" == on || "$custom_ops" == off ]] || { echo "parity.sh: --custom-ops takes on or off" >&2; exit 2; }
model="${1:-cifar10_vit}"; shift || true
opts=("$@"); [[ ${#opts[@]} -gt 0 ]] || opts=(--pts --lis)
tag="$(printf '%s' "${opts[*]}" | tr -c 'A-Za-z0-9' '_' | tr -s '_' | sed 's/^_//; s/_$//')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
py=.venv/bin/python
$py calibrate.py "$model" "${opts[@]}" --calib-dir "$data/train" --calib-size 1000 -o "$tmp/calib.pt"
$py export.py "$model" --calib "$tmp/calib.pt" -o "$tmp/model.onnx" --parity-images 0
$py evaluate.py "$model" --calib "$tmp/calib.pt" --onnx "$tmp/model.onnx" --data-dir "$data/test" \
    --parity --custom-ops "$custom_ops" --json "bench/results/parity_${model}_${tag:-plain}$([[ $custom_ops == off ]] && echo _functions).json"
