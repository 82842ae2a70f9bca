#!/usr/bin/env bash
# ONNX models: `cnn info` / `cnn bench` take a .onnx file; the repository serves
# NAME/VERSION/model.onnx (a truncated newer version is refused, the older one stays live)
# and v2 inference matches a plain Python forward pass (check_onnx.py).
source "$(dirname "$0")/lib.sh"
itest_init onnx

mkdir -p "$T/repo/onnxnet/1" "$T/repo/onnxnet/2"
"$PY" "$ITEST_DIR/onnx_net.py" write "$T/repo/onnxnet/1/model.onnx" || fail "onnx_net.py write"
head -c 300 "$T/repo/onnxnet/1/model.onnx" >"$T/repo/onnxnet/2/model.onnx"

out=$("$CNN" info "$T/repo/onnxnet/1/model.onnx" 2>&1)
check grep -q 'classes: 5' <<<"$out" -- "cnn info model.onnx: 5 classes"
check grep -q 'conv2d' <<<"$out" -- "cnn info model.onnx: the Conv node is a conv2d layer"
out=$("$CNN" info "$T/repo/onnxnet/2/model.onnx" 2>&1); rc=$?
check [ "$rc" = 1 ] -- "cnn info on a truncated model.onnx exits 1"
check grep -q 'not a valid ModelProto' <<<"$out" -- "cnn info on a truncated model.onnx says why: $out"
"$CNN" bench "$T/repo/onnxnet/1/model.onnx" --batch 2 --runs 1 --warmup 0 --min-time 0 >"$T/bench.out" 2>&1
check [ $? = 0 ] -- "cnn bench model.onnx runs: $(head -c 80 "$T/bench.out")"

write_config
cnnd_start || finish
check grep -q 'onnxnet' "$T/cnnd.log" -- "cnnd logs the onnxnet model"
py check_onnx
cnnd_stop
finish
