#!/usr/bin/env bash
# Classifies images with cnnd's plain REST API (POST /v1/models/MODEL/classify) using curl.
#   clients/classify.sh IMG...        one image: sent as the raw body; several: multipart
# Environment: CNND_URL (default http://127.0.0.1:8080), MODEL (default fashion),
# VERSION (default: the live one), TOP_K (default: the server's).  Prints the JSON answer;
# exits nonzero when curl fails or the status is not 2xx (the error body is still printed).
set -euo pipefail
url=${CNND_URL:-http://127.0.0.1:8080}
model=${MODEL:-fashion}
[ $# -ge 1 ] || { echo "usage: $0 IMG..." >&2; exit 2; }

path="/v1/models/$model"
[ -n "${VERSION:-}" ] && path="$path/versions/$VERSION"
path="$path/classify"
[ -n "${TOP_K:-}" ] && path="$path?top_k=$TOP_K"

type_of() {  # content type by extension
  case "${1,,}" in
    *.jpg|*.jpeg) echo image/jpeg ;;
    *) echo image/png ;;
  esac
}

if [ $# -eq 1 ]; then
  # One image: the body is the image itself.
  exec curl -sS --fail-with-body -H "Content-Type: $(type_of "$1")" --data-binary "@$1" "$url$path"
fi
# Several images: one multipart/form-data field per image, one result per image.
form=()
i=0
for img in "$@"; do
  form+=(-F "image$i=@$img;type=$(type_of "$img")")
  i=$((i + 1))
done
exec curl -sS --fail-with-body "${form[@]}" "$url$path"
