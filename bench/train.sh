#!/usr/bin/env bash
# Training benchmark: the bundled architecture (fashion_cnn) trained for a fixed number of
# SGD steps on Fashion-MNIST by `cnn train` and by PyTorch 1.13 (bench/train_torch.py: same
# layers, batch size, optimiser, schedule and threads) in the same run, alternating the two
# per configuration, ROUNDS times (this VM's speed drifts by 10-20% from minute to minute,
# for both engines).  Prints the median steady-state images/s of each (the first 5 steps
# of a run are warm-up), the ratio of the medians cnn / torch, and every round's numbers.
# A number, never a pass/fail.
#   CNN=build/cnn bash bench/train.sh
#   env: STEPS (default 100), ROUNDS (3), BATCHES ("64 128"), THREADS ("1 2"), DATA, PYTHON
set -euo pipefail

CNN=${CNN:-build/cnn}
STEPS=${STEPS:-100}
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-"64 128"}
THREADS=${THREADS:-"1 2"}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
PYTHON=${PYTHON:-/usr/bin/python3}   # Debian's python3-torch lives in the system Python
here=$(cd "$(dirname "$0")" && pwd)

[ -x "$CNN" ] || { echo "train.sh: $CNN not built (make build/cnn)" >&2; exit 1; }
"$PYTHON" -c 'import torch' 2>/dev/null ||
  { echo "train.sh: $PYTHON cannot import torch (apt-get install python3-torch)" >&2; exit 1; }

# images/s from a "... : X images/s" line
rate() { sed -n 's/.*: \([0-9.]*\) images\/s.*/\1/p' | tail -1; }
# median of the numbers on the command line
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# training benchmark: fashion_cnn, $STEPS SGD steps (momentum 0.9, wd 5e-4, cosine),"
echo "# Fashion-MNIST batches from memory; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "# torch $("$PYTHON" -c 'import torch; print(torch.__version__)'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-6s %12s %12s %8s   %s\n' threads batch cnn_img/s torch_img/s ratio "rounds (cnn/torch)"
for t in $THREADS; do
  for b in $BATCHES; do
    cs=() ps=() rounds=""
    for ((k = 0; k < ROUNDS; k++)); do
      c=$("$CNN" train fashion_cnn --data "$DATA" --steps "$STEPS" --batch "$b" --threads "$t" \
            --val-split 0 --quiet --seed 1 | rate)
      p=$(OMP_NUM_THREADS=$t "$PYTHON" "$here/train_torch.py" --data "$DATA" --steps "$STEPS" \
            --batch "$b" --threads "$t" --seed 1 | rate)
      cs+=("$c") ps+=("$p") rounds+=" $c/$p"
    done
    c=$(median "${cs[@]}") p=$(median "${ps[@]}")
    r=$(awk -v c="$c" -v p="$p" 'BEGIN { if (p > 0) printf "%.2f", c / p; else print "-" }')
    printf '%-8s %-6s %12s %12s %8s  %s\n' "$t" "$b" "$c" "$p" "$r" "$rounds"
  done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
