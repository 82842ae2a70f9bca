#!/usr/bin/env bash
# KServe v2 (Open Inference Protocol) inference with curl: the images travel as one BYTES
# input with the binary data extension, the answer uses the classification extension.
#   clients/infer_v2.sh IMG...
# Environment: CNND_URL (default http://127.0.0.1:8080), MODEL (default fashion),
# VERSION (default: the live one), TOP_K (classification K, default 3), INPUT and OUTPUT
# (tensor names; default: read from GET /v2/models/MODEL).  Prints the JSON answer, whose
# output holds [N, K] strings "score:index:label"; nonzero exit on a non-2xx status.
#
# Body layout (binary data extension):
#   {"inputs":[{"name":INPUT,"shape":[N],"datatype":"BYTES",
#               "parameters":{"binary_data_size":SIZE}}],
#    "outputs":[{"name":OUTPUT,"parameters":{"classification":K}}]}
#   then SIZE bytes: per image a 4-byte little-endian length and the encoded image.
#   Header Inference-Header-Content-Length = length of the JSON part.
set -euo pipefail
url=${CNND_URL:-http://127.0.0.1:8080}
model=${MODEL:-fashion}
topk=${TOP_K:-3}
[ $# -ge 1 ] || { echo "usage: $0 IMG..." >&2; exit 2; }

path="/v2/models/$model"
[ -n "${VERSION:-}" ] && path="$path/versions/$VERSION"

input=${INPUT:-}
output=${OUTPUT:-}
if [ -z "$input" ] || [ -z "$output" ]; then
  meta=$(curl -sS --fail-with-body "$url$path")
  # First "name" inside "inputs" / "outputs" of the model metadata.
  [ -n "$input" ] || input=$(sed -E 's/.*"inputs"[^{]*\{[^}]*"name" *: *"([^"]*)".*/\1/' <<<"$meta")
  [ -n "$output" ] || output=$(sed -E 's/.*"outputs"[^{]*\{[^}]*"name" *: *"([^"]*)".*/\1/' <<<"$meta")
fi

le32() {  # 4-byte little-endian encoding of $1
  printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"
  printf "\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/data"
for img in "$@"; do
  le32 "$(stat -c %s "$img")" >>"$tmp/data"
  cat "$img" >>"$tmp/data"
done
size=$(stat -c %s "$tmp/data")
printf '{"inputs":[{"name":"%s","shape":[%d],"datatype":"BYTES","parameters":{"binary_data_size":%d}}],"outputs":[{"name":"%s","parameters":{"classification":%d}}]}' \
  "$input" $# "$size" "$output" "$topk" >"$tmp/head"
cat "$tmp/head" "$tmp/data" >"$tmp/body"

curl -sS --fail-with-body \
  -H "Content-Type: application/octet-stream" \
  -H "Inference-Header-Content-Length: $(stat -c %s "$tmp/head")" \
  --data-binary "@$tmp/body" "$url$path/infer"
echo
