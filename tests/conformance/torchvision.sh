#!/usr/bin/env bash
# torchvision's classic CNNs served by cnnd equal ONNX Runtime (`make conformance-torchvision`):
# exports AlexNet, VGG-11, GoogLeNet, ResNet-18/50, DenseNet-121, SqueezeNet 1.1 and
# MobileNetV2 with seeded random weights (torchvision_export.py: opset 13, dynamic batch, a
# Softmax appended) into a temp repository, runs ONNX Runtime on a seeded batch-2 input
# (ort_run.js), serves the repository with build/cnnd on an ephemeral loopback port and
# compares /v2/models/NAME/infer (binary FP32) with it (torchvision_check.py, atol 1e-4).
# Needs Debian's python3-torch/torchvision/onnx and ../shared/peers/setup.sh's onnxruntime-node.
# MODELS=resnet18,... picks models; KEEP_TMP=1 keeps the temp folder.
source "$(dirname "$0")/../integration/lib.sh"
CONF_DIR=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=${TORCH_PYTHON:-/usr/bin/python3}
MODELS=${MODELS:-alexnet,vgg11,googlenet,resnet18,resnet50,densenet121,squeezenet1_1,mobilenet_v2}
itest_init torchvision

"$TORCH_PY" -c 'import torch, torchvision, onnx' 2>/dev/null ||
  { echo "FAIL torchvision: $TORCH_PY cannot import torch, torchvision, onnx" \
         "(apt-get install python3-torch python3-torchvision python3-onnx)"; exit 1; }
node -e 'require(require("path").join(process.env.CNND_PEERS_HOME || require("os").homedir() +
  "/.cache/cnnd-peers", "node_modules/onnxruntime-node"))' 2>/dev/null ||
  { echo "FAIL torchvision: onnxruntime-node not found: run bash ../shared/peers/setup.sh"; exit 1; }

echo "exporting $MODELS (torch $("$TORCH_PY" -c 'import torch; print(torch.__version__)'))"
"$TORCH_PY" "$CONF_DIR/torchvision_export.py" "$T" --models "$MODELS" 2>"$T/export.err" ||
  { echo "FAIL torchvision: export failed"; tail -n 20 "$T/export.err"; exit 1; }
# the repository must hold only model folders; the exporter writes it under $T/repo
mkdir -p "$T/ort"
for m in ${MODELS//,/ }; do
  node "$CONF_DIR/ort_run.js" "$T/repo/$m/1/model.onnx" "$T/in/$m.f32" 2,3,224,224 \
    "$T/ort/$m.f32" >/dev/null || { echo "FAIL torchvision: ONNX Runtime failed on $m"; exit 1; }
done

# one worker per model, batches of 2, no queue timeout (VGG-11 takes seconds on one core)
write_config batching.max_batch_size=2 batching.instances=1 server.request_timeout_ms=0
READY_WAIT=0 cnnd_start || exit 1
for i in $(seq 1 1200); do  # every model logs "model loaded" or "model load failed"
  n=0
  for m in ${MODELS//,/ }; do
    grep -qE "model (loaded|load failed) name=$m " "$T/cnnd.log" && n=$((n + 1))
  done
  [ "$n" = "$(wc -w <<<"${MODELS//,/ }")" ] && break
  cnnd_alive || { echo "FAIL torchvision: cnnd exited"; tail -n 20 "$T/cnnd.log"; exit 1; }
  sleep 0.1
done
"$PY" "$CONF_DIR/torchvision_check.py" "$URL" "$T" "$T/cnnd.log" ${MODELS//,/ }
rc=$?
cnnd_stop >/dev/null
exit $rc
