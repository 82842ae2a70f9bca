#!/usr/bin/env bash
# Model repository updates: 20 versions published (temp folder + rename, SIGHUP) while 16
# clients classify -> 0 failures, answers match the version they name, RSS stable
# (check_swap.py); a corrupt version, or one with a flipped weight bit (checksum), leaves the
# live one serving and is logged; polling
# (poll_interval_s) picks up a version without SIGHUP.
source "$(dirname "$0")/lib.sh"
itest_init hotswap

IMG="$ROOT/models/samples/sneaker.png"
repo_add fashion 1 lenet5 1
pubs=()
for v in $(seq 2 21); do pubs+=("$v=$(model_file lenet5 "$v")"); done
write_config batching.max_batch_size=16 batching.max_queue_delay_us=500 \
  batching.instances=1 batching.blas_threads=1
cnnd_start || finish
py check_swap fashion "$T/repo/fashion" "$IMG" 16 "${pubs[@]}"
freed=0
for v in $(seq 1 20); do
  grep -qE "model version freed name=fashion version=$v( |\$)" "$T/cnnd.log" && freed=$((freed + 1))
done
check [ "$freed" = 20 ] -- "each of the 20 replaced versions was freed (log: model version freed; $freed of 20)"

live_version() {
  curl -s -H 'Content-Type: image/png' --data-binary "@$IMG" "$URL/v1/models/fashion/classify" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null
}

# A version that fails to load: the old one keeps serving, the log says why.
mkdir -p "$T/repo/fashion/.tmp-30"
head -c 4096 /dev/urandom >"$T/repo/fashion/.tmp-30/model.cnn"
mv "$T/repo/fashion/.tmp-30" "$T/repo/fashion/30"
kill -HUP "$CNND_PID"
sleep 1
v=$(live_version)
check [ "$v" = 21 ] -- "corrupt version 30 published: version 21 still serves (got $v)"
check grep -qE '(version=30|fashion/30|/30/)' "$T/cnnd.log" -- "the failed load of version 30 is logged"
expect_status 404 GET /v2/models/fashion/versions/30 -- "the corrupt version is not served"

# A well-formed version whose weight data has one flipped bit (format version 2 checksum):
# refused at load with "checksum mismatch", version 21 keeps serving.
mkdir -p "$T/repo/fashion/.tmp-40"
"$PY" - "$(model_file lenet5 40)" "$T/repo/fashion/.tmp-40/model.cnn" <<'PYEOF'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
assert b[:8] == b"CNNMODEL" and struct.unpack_from("<I", b, 8)[0] == 2, "not a version-2 file"
off, size = struct.unpack_from("<QQ", b, 104)  # the weight section
b[off + size // 2] ^= 0x04
open(sys.argv[2], "wb").write(b)
PYEOF
mv "$T/repo/fashion/.tmp-40" "$T/repo/fashion/40"
kill -HUP "$CNND_PID"
sleep 1
v=$(live_version)
check [ "$v" = 21 ] -- "version 40 with one flipped weight bit published: version 21 still serves (got $v)"
msg=$(grep -E 'fashion.*40' "$T/cnnd.log" | grep -m1 'checksum mismatch')
check [ -n "$msg" ] -- "the refused load of version 40 is logged with 'checksum mismatch': $msg"
expect_status 404 GET /v2/models/fashion/versions/40 -- "the flipped-bit version is not served"
cnnd_stop
rm -rf "$T/repo/fashion/40"

# Polling: no signal, the repository is re-read every second.
rm -rf "$T/repo/fashion/30"
write_config models.poll_interval_s=1 batching.instances=1 batching.blas_threads=1
cnnd_start || finish
publish fashion 31 lenet5 31
v=
for _ in $(seq 1 50); do
  v=$(live_version)
  [ "$v" = 31 ] && break
  sleep 0.1
done
check [ "$v" = 31 ] -- "with poll_interval_s=1 a published version goes live without SIGHUP (got $v)"
cnnd_stop
finish
