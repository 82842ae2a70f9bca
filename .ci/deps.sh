#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing.
#   bash .ci/deps.sh build|test|run|bench|model|all
# Uses apt-get, through sudo when not root.  Prints nothing when all are present.
set -euo pipefail

build=(gcc make pkg-config libopenblas-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev check libmicrohttpd-dev libjansson-dev libinih-dev libcurl4-openssl-dev protobuf-c-compiler libprotobuf-c-dev libonnx-dev)
test=("${build[@]}" curl valgrind dataset-fashion-mnist prometheus libonnx-testdata nginx python3-yaml)
run=("${build[@]}" curl python3 dataset-fashion-mnist libonnx-testdata)   # + what README.md's examples use
bench=("${build[@]}" nodejs python3 python3-torch python3-torchvision python3-onnx dataset-fashion-mnist)   # torchvision + onnx: bench/onnx_rows.sh exports the .onnx models
model=("${build[@]}" dataset-fashion-mnist)

case "${1:-build}" in
  build) want=("${build[@]}") ;;
  test) want=("${test[@]}") ;;
  run) want=("${run[@]}") ;;
  bench) want=("${bench[@]}") ;;
  model) want=("${model[@]}") ;;
  all) want=("${test[@]}" "${run[@]}" "${bench[@]}") ;;
  *) echo "usage: $0 build|test|run|bench|model|all" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true   # a stale index still installs what it knows
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
