#!/usr/bin/env bash
# End to end (`make conformance-photo`): a torchvision ResNet-18 (seeded random weights,
# torchvision_export.py) served from model.onnx with a config.ini giving ImageNet mean/std,
# shorter side 256 + center crop 224 and a labels file classifies a 320x240 JPEG photo through
# /v1/models/resnet18/classify?top_k=5; the answer must equal a Python reference (photo_prep.py:
# torchvision.io decode, torch bilinear resize, crop, normalise; ONNX Runtime on the same
# model.onnx via ort_run.js): same top-5, scores within ATOL (photo_check.py).
# Needs Debian's python3-torch/torchvision/onnx and ../shared/peers/setup.sh's onnxruntime-node.
source "$(dirname "$0")/../integration/lib.sh"
CONF_DIR=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=${TORCH_PYTHON:-/usr/bin/python3}
ATOL=${ATOL:-1e-4}
itest_init photo

"$TORCH_PY" -c 'import torch, torchvision, onnx' 2>/dev/null ||
  { echo "FAIL photo: $TORCH_PY cannot import torch, torchvision, onnx"; exit 1; }
"$TORCH_PY" "$CONF_DIR/torchvision_export.py" "$T" --models resnet18 2>"$T/export.err" ||
  { echo "FAIL photo: export failed"; tail -n 20 "$T/export.err"; exit 1; }
"$TORCH_PY" "$CONF_DIR/photo_prep.py" "$T" resnet18 ||
  { echo "FAIL photo: photo_prep.py failed"; exit 1; }
mkdir -p "$T/ort"
node "$CONF_DIR/ort_run.js" "$T/repo/resnet18/1/model.onnx" "$T/ref.f32" 1,3,224,224 \
  "$T/ort/photo.f32" >/dev/null || { echo "FAIL photo: ONNX Runtime failed"; exit 1; }

write_config batching.max_batch_size=1 batching.instances=1 server.request_timeout_ms=0
cnnd_start || exit 1
"$PY" "$CONF_DIR/photo_check.py" "$URL" "$T" resnet18 --atol "$ATOL"
rc=$?
cnnd_stop >/dev/null
exit $rc
