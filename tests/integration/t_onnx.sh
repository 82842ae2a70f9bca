#!/usr/bin/env bash
# ONNX models: `cnn info` / `cnn bench` take a .onnx file; the repository serves
# NAME/VERSION/model.onnx (a truncated newer version is refused, the older one stays live)
# and v2 inference matches a plain Python forward pass (check_onnx.py); a fine-tune job on
# the ONNX-served model publishes a model.cnn version that serves (check_onnx_finetune.py).
source "$(dirname "$0")/lib.sh"
itest_init onnx

mkdir -p "$T/repo/onnxnet/1" "$T/repo/onnxnet/2"
"$PY" "$ITEST_DIR/onnx_net.py" write "$T/repo/onnxnet/1/model.onnx" || fail "onnx_net.py write"
head -c 300 "$T/repo/onnxnet/1/model.onnx" >"$T/repo/onnxnet/2/model.onnx"
# the same net with 8 input channels: served for tensors (/v2), not for images (/v1 classify)
mkdir -p "$T/repo/onnxc8/1"
"$PY" "$ITEST_DIR/onnx_net.py" write "$T/repo/onnxc8/1/model.onnx" 8 || fail "onnx_net.py write 8"
out=$("$CNN" convert "$T/repo/onnxc8/1/model.onnx" "$T/c8.cnn" --mean 0.5 --std 2 2>&1)
check [ $? = 0 ] -- "cnn convert of an 8-channel model.onnx writes a model.cnn: $out"
out=$("$CNN" info "$T/c8.cnn" 2>&1)
check grep -q 'input: 8x8x8 (tensor)' <<<"$out" -- "cnn info reads the 8-channel model.cnn back: $out"

out=$("$CNN" info "$T/repo/onnxnet/1/model.onnx" 2>&1)
check grep -q 'classes: 5' <<<"$out" -- "cnn info model.onnx: 5 classes"
check grep -q 'conv2d' <<<"$out" -- "cnn info model.onnx: the Conv node is a conv2d layer"
out=$("$CNN" info "$T/repo/onnxnet/2/model.onnx" 2>&1); rc=$?
check [ "$rc" = 1 ] -- "cnn info on a truncated model.onnx exits 1"
check grep -q 'not a valid ModelProto' <<<"$out" -- "cnn info on a truncated model.onnx says why: $out"
"$CNN" bench "$T/repo/onnxnet/1/model.onnx" --batch 2 --runs 1 --warmup 0 --min-time 0 >"$T/bench.out" 2>&1
check [ $? = 0 ] -- "cnn bench model.onnx runs: $(head -c 80 "$T/bench.out")"
"$CNN" convert "$T/repo/onnxnet/1/model.onnx" "$T/bgr.onnx" --channel-order bgr >/dev/null 2>&1
check [ $? = 0 ] -- "cnn convert --channel-order bgr writes an ONNX file"
out=$("$CNN" info "$T/bgr.onnx" 2>&1)
check grep -q 'input: 3x8x8 (BGR)' <<<"$out" -- "cnn info reads cnn.channel_order back: BGR"
out=$("$CNN" convert "$T/repo/onnxnet/1/model.onnx" "$T/x.cnn" --channel-order grb 2>&1); rc=$?
check [ "$rc" != 0 ] -- "cnn convert --channel-order grb is refused"
check grep -q 'channel-order' <<<"$out" -- "cnn convert names the bad flag: $out"

# the same model with NAME/config.ini preprocessing (in 0..255 units, scale 255) and labels
mkdir -p "$T/repo/onnxpp/1"
cp "$T/repo/onnxnet/1/model.onnx" "$T/repo/onnxpp/1/model.onnx"
printf 'cat\ndog\nfox\nowl\nemu\n' >"$T/repo/onnxpp/labels.txt"
printf '[model]\nlabels = labels.txt\n[preprocessing]\nscale = 255\nmean = 127.5,63.75,191.25\nstd = 127.5,510,63.75\ninput_size = 8x8\nresize = stretch\n' \
  >"$T/repo/onnxpp/config.ini"
# the same preprocessing with channel_order = bgr (mean/std still by output channel)
mkdir -p "$T/repo/onnxbgr/1"
cp "$T/repo/onnxnet/1/model.onnx" "$T/repo/onnxbgr/1/model.onnx"
printf '[preprocessing]\nscale = 255\nmean = 127.5,63.75,191.25\nstd = 127.5,510,63.75\nchannel_order = bgr\n' \
  >"$T/repo/onnxbgr/config.ini"
# and one whose input_size does not fit the model: refused, named in the log
mkdir -p "$T/repo/onnxbad/1"
cp "$T/repo/onnxnet/1/model.onnx" "$T/repo/onnxbad/1/model.onnx"
printf '[preprocessing]\ninput_size = 224x224\n' >"$T/repo/onnxbad/config.ini"

write_config
cnnd_start || finish
check grep -q 'input_size 224x224: the model takes 8x8' "$T/cnnd.log" -- \
  "config.ini input_size other than the ONNX model's is refused with the reason in the log"

check grep -q 'onnxnet' "$T/cnnd.log" -- "cnnd logs the onnxnet model"
py check_onnx
# a fine-tune job on the model served from model.onnx (onnxpp) publishes a model.cnn
export CNND_ADMIN_URL CNND_ADMIN_TOKEN_FILE="$T/admin.token"
CNND_ADMIN_URL=$(admin_url)
py check_onnx_finetune "$T/repo" "$T"
cnnd_stop
finish
