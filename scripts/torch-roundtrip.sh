#!/usr/bin/env bash
# A tapegrad checkpoint loads into PyTorch's torch.nn.Sequential with
# load_state_dict and gives the same logits; PyTorch's state_dict written back
# loads into tapegrad bit-identical. Uses Debian's PyTorch (/usr/bin/python3).
# usage: scripts/torch-roundtrip.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/torch_roundtrip_model" write "$work"
for model in float32 float64 binary_float32 binary_float64 training training_lbfgs sparse; do
  /usr/bin/python3 tests/torch_roundtrip.py "$work/m_$model.safetensors" "$work/cases_$model.csv" "$work/back_$model.safetensors"
  "$build/torch_roundtrip_model" same "$work/m_$model.safetensors" "$work/back_$model.safetensors"
done
echo "torch round trip: 7 passed, 0 failed"
