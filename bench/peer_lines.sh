#!/usr/bin/env bash
# cnnd's JSON lines for ../shared/peers/run_all.sh --extra "bench/peer_lines.sh":
# one `cnn bench --json` line per (model, batch, threads) the peers runner asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
CNN=${CNN:-build/cnn}
round=1
while [ $# -gt 0 ]; do
  case "$1" in --round) round="$2"; shift 2 ;; *) shift ;; esac
done
models=${CNND_PEERS_MODELS:-lenet5,cifar_cnn,resnet18}
threads=${CNND_PEERS_THREADS:-1,2}
for model in ${models//,/ }; do
  case "$model" in resnet18) batches="1 8 16" ;; *) batches="1 8 32" ;; esac
  for t in ${threads//,/ }; do
    for b in $batches; do
      "$CNN" bench "arch:$model" --batch "$b" --threads "$t" --json --name "$model" \
        --round "$round" --min-time "${CNND_PEERS_MIN_TIME:-1.0}" \
        --runs "${CNND_PEERS_MIN_ITERS:-7}"
    done
  done
done
