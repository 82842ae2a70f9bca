#!/usr/bin/env bash
# Dynamic batching: 32 concurrent clients on a fashion_cnn model with max_batch_size 32 ->
# the batch-size histogram's mean is above 4 and every answer equals the single-image
# result and `cnn predict` (check_load.py batching).  Not LeNet-5: at ~10 us per image its
# worker catches up with the clients on a loaded machine (mean batch 1.8-9 over 9 runs).
source "$(dirname "$0")/lib.sh"
itest_init batching

repo_add fashion 1 fashion_cnn 5
"$PY" "$ITEST_DIR/fashion_png.py" "$T/imgs" --first 32 >/dev/null || fail "fashion_png.py"
write_config batching.max_batch_size=32 batching.max_queue_delay_us=10000 \
  batching.max_queue_size=256 batching.instances=1 batching.blas_threads=1
cnnd_start || finish
py check_load batching fashion "$(model_file fashion_cnn 5)" 32 ${ROUNDS:-15} "$T"/imgs/*.png
cnnd_stop
finish
