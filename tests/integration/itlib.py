"""Shared Python helpers of the integration tests: PASS/FAIL reporting, the reference
results from `cnn predict --json`, comparison of predictions, /metrics parsing, raw HTTP
over a socket, and decoding of the 8-bit grayscale PNGs that fashion_png.py writes."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "clients"))
import cnnd_client  # noqa: E402  (the client under test is also our driver)

URL = os.environ.get("CNND_URL", "")
CNN = os.environ.get("CNN", os.path.join(ROOT, "build", "cnn"))
PID = int(os.environ.get("CNND_PID") or 0)
TOL = 1e-5

npass = 0
nfail = 0


def ok(msg):
    global npass
    npass += 1
    print("PASS " + msg, flush=True)


def bad(msg):
    global nfail
    nfail += 1
    print("FAIL " + msg, flush=True)


def check(cond, msg, why=""):
    if cond:
        ok(msg)
    else:
        bad(msg + (": " + why if why else ""))
    return cond


def done():
    """Exit status for the script: nonzero when anything failed."""
    sys.exit(1 if nfail else 0)


def host_port():
    u = URL.split("//", 1)[1].split("/", 1)[0]
    h, p = u.rsplit(":", 1)
    return h, int(p)


def client(timeout=60):
    return cnnd_client.Client(URL, timeout=timeout)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- reference results --------------------------------------------------------------
def cnn_predict(model_file, images, top=10):
    """{image path: [(label, index, score), ...]} from `cnn predict --json`."""
    out = subprocess.run([CNN, "predict", model_file] + list(images) +
                         ["--json", "--top", str(top)],
                         check=True, capture_output=True, text=True).stdout
    ref = {}
    for line in out.splitlines():
        d = json.loads(line)
        ref[d["image"]] = [(p["label"], p["index"], p["score"]) for p in d["predictions"]]
    if len(ref) != len(set(images)):
        raise RuntimeError("cnn predict answered %d of %d images" % (len(ref), len(images)))
    return ref


def preds_of(result):
    """[(label, index, score)] from one classify result {"predictions": [...]}."""
    return [(p.get("label"), p.get("index"), p.get("score")) for p in result["predictions"]]


def same_preds(got, ref, labels=True):
    """None when got (server) equals ref in order, index, label and score (TOL), else why."""
    if len(got) != len(ref):
        return "%d predictions, expected %d" % (len(got), len(ref))
    for k, (g, r) in enumerate(zip(got, ref)):
        if g[1] != r[1]:
            return "rank %d: index %r, expected %r" % (k, g[1], r[1])
        if labels and g[0] != r[0]:
            return "rank %d: label %r, expected %r" % (k, g[0], r[0])
        if not isinstance(g[2], (int, float)) or abs(g[2] - r[2]) > TOL:
            return "rank %d: score %r, expected %r" % (k, g[2], r[2])
    return None


def probs_from_ref(ref):
    """Dense probability vector (by class index) from a full top-K reference."""
    v = [None] * len(ref)
    for _, idx, score in ref:
        v[idx] = score
    return v


def close_vec(got, want):
    if len(got) != len(want):
        return "%d values, expected %d" % (len(got), len(want))
    for i, (g, w) in enumerate(zip(got, want)):
        if not isinstance(g, (int, float)) or abs(g - w) > TOL:
            return "value %d: %r, expected %r" % (i, g, w)
    return None


# ---- /metrics ---------------------------------------------------------------------
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def metrics():
    """[(name, labels text, value)] of every sample on /metrics."""
    c = client()
    status, _, body = c.request("GET", "/metrics")
    c.close()
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    out = []
    for line in body.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def metric_sum(samples, pattern, label_part=""):
    """Sum of samples whose name matches the regex pattern (fully) and whose label text
    contains label_part; None when no sample matches."""
    rx = re.compile(pattern)
    vals = [v for n, lab, v in samples if rx.fullmatch(n) and label_part in lab]
    return sum(vals) if vals else None


def batch_hist(samples, model=""):
    """(sum, count) of the batch-size histogram (a *batch_size* family): the model's series
    when it is labelled by model, else the server-wide one; None when there is none."""
    for lab in (('model="%s"' % model) if model else None, ""):
        if lab is None:
            continue
        s = metric_sum(samples, r".*batch_size.*_sum", lab)
        c = metric_sum(samples, r".*batch_size.*_count", lab)
        if s is not None and c is not None:
            return s, c
    return None


# ---- raw HTTP ---------------------------------------------------------------------
def raw_http(data, timeout=5.0, shut_wr=False, addr=None):
    """Sends bytes on a fresh connection (to addr, a (host, port), default cnnd's inference
    port); returns (status or None, headers dict lowercased, body bytes, seconds until the
    status line arrived)."""
    s = socket.create_connection(addr or host_port(), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        buf = b""
        t_first = None
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            if t_first is None:
                t_first = time.monotonic() - t0
            buf += chunk
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
    finally:
        s.close()
    if not buf.startswith(b"HTTP/"):
        return None, {}, buf, t_first
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body, t_first


def is_error_json(body):
    try:
        d = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(d, dict) and isinstance(d.get("error"), str) and d["error"] != ""


# ---- images -------------------------------------------------------------------------
def png_gray_pixels(path):
    """(w, h, bytes) of an 8-bit gray, non-interlaced PNG whose rows all use filter 0
    (what fashion_png.py writes)."""
    d = read(path)
    if d[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("%s: not PNG" % path)
    i, idat, w = 8, b"", None
    while i < len(d):
        n, kind = struct.unpack(">I4s", d[i:i + 8])
        payload = d[i + 8:i + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", payload)
            if (depth, ctype, inter) != (8, 0, 0):
                raise ValueError("%s: not 8-bit gray non-interlaced" % path)
        elif kind == b"IDAT":
            idat += payload
        i += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (w + 1):(y + 1) * (w + 1)] for y in range(h)]
    if any(r[0] != 0 for r in rows):
        raise ValueError("%s: filtered rows" % path)
    return w, h, b"".join(r[1:] for r in rows)


def png_gray(w, h, pixels):
    """PNG bytes of an 8-bit gray image (rows unfiltered)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload +
                struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
