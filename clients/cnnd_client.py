#!/usr/bin/env python3
"""cnnd client, Python 3 standard library only: plain classification (/v1) and the Open
Inference Protocol (KServe v2) REST API -- JSON FP32 tensors, BYTES images with the binary
data extension, the classification extension -- and the admin API's fine-tune jobs (class
AdminClient: start, follow with a progress line until the job ends, cancel).  Import it
(class Client, AdminClient) or run it:

  cnnd_client.py [--url URL] models | health | metadata MODEL
  cnnd_client.py [--url URL] classify MODEL IMG... [--top-k K] [--version V]
  cnnd_client.py [--url URL] infer MODEL IMG... [--classification K] [--json-output] [--version V]
  cnnd_client.py [--admin-url URL] [--token-file F] finetune MODEL --dataset PATH
                 [--format idx|folder] [--epochs N] [--set KEY=JSON]... [--follow]
  cnnd_client.py [--admin-url URL] [--token-file F] job ID [--follow] | jobs | cancel ID

The admin token is $CNND_ADMIN_TOKEN, else the first line of --token-file (default
$CNND_ADMIN_TOKEN_FILE or models/admin.token).  `finetune --follow` and `job --follow`
print one progress line per change on stderr until the job ends and exit 0 when the job ran
to a decision (succeeded: published; rejected: the gate kept the parent), 3 when it failed
or was cancelled; the final status goes to stdout as JSON.
"""
import argparse
import http.client
import json
import os
import struct
import sys
import time
import urllib.parse
import uuid

DEFAULT_URL = os.environ.get("CNND_URL", "http://127.0.0.1:8080")
DEFAULT_ADMIN_URL = os.environ.get("CNND_ADMIN_URL", "http://127.0.0.1:8081")
DEFAULT_TOKEN_FILE = os.environ.get("CNND_ADMIN_TOKEN_FILE", "models/admin.token")
FINAL_STATES = ("succeeded", "failed", "cancelled", "rejected")


class CnndError(Exception):
    """A non-2xx answer: .status, .body (bytes), .message (the server's "error" text)."""

    def __init__(self, status, body, headers):
        self.status, self.body, self.headers = status, body, headers
        try:
            self.message = json.loads(body.decode("utf-8")).get("error", "")
        except (ValueError, AttributeError, UnicodeDecodeError):
            self.message = body[:200].decode("utf-8", "replace")
        super().__init__("HTTP %d: %s" % (status, self.message))


def image_type(data):
    """MIME type of encoded image bytes by their signature."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return "application/octet-stream"


def pack_bytes(elements):
    """BYTES tensor in binary form: each element as a 4-byte little-endian length + bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def unpack_bytes(data):
    """Inverse of pack_bytes; raises ValueError on a truncated buffer."""
    out, i = [], 0
    while i < len(data):
        if i + 4 > len(data):
            raise ValueError("BYTES element length truncated at %d" % i)
        (n,) = struct.unpack_from("<I", data, i)
        i += 4
        if i + n > len(data):
            raise ValueError("BYTES element of %d bytes truncated at %d" % (n, i))
        out.append(data[i:i + n])
        i += n
    return out


def multipart(fields):
    """multipart/form-data body for [(field name, file name, content type, bytes)]."""
    boundary = "cnnd-" + uuid.uuid4().hex
    parts = []
    for name, fname, ctype, data in fields:
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: %s\r\n\r\n" % (boundary, name, fname, ctype)).encode()
                     + data + b"\r\n")
    body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=" + boundary


def flatten(x):
    """Flat list and shape of a nested list of numbers."""
    if not isinstance(x, (list, tuple)):
        return [x], []
    if not x:
        return [], [0]
    flat, shape = [], None
    for e in x:
        f, s = flatten(e)
        if shape is None:
            shape = s
        elif s != shape:
            raise ValueError("ragged nested list")
        flat.extend(f)
    return flat, [len(x)] + shape


def decode_v2(status, headers, body):
    """The v2 infer answer as a dict; outputs sent as binary data get their decoded values
    in "data" (floats for FP32, bytes for BYTES) and keep their parameters."""
    hlen = headers.get("inference-header-content-length")
    if hlen is None:
        return json.loads(body.decode("utf-8"))
    hlen = int(hlen)
    resp = json.loads(body[:hlen].decode("utf-8"))
    off = hlen
    for out in resp.get("outputs", []):
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        raw = body[off:off + size]
        if len(raw) != size:
            raise ValueError("binary output %s truncated" % out.get("name"))
        off += size
        dt = out.get("datatype")
        if dt == "FP32":
            out["data"] = list(struct.unpack("<%df" % (size // 4), raw))
        elif dt == "BYTES":
            out["data"] = unpack_bytes(raw)
        else:
            out["data"] = raw
    if off != len(body):
        raise ValueError("%d bytes after the binary outputs" % (len(body) - off))
    return resp


class Client:
    """One keep-alive connection to cnnd.  Methods raise CnndError on a non-2xx answer."""

    def __init__(self, url=DEFAULT_URL, timeout=30):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise ValueError("only http:// URLs: %s" % url)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn = None
        self._meta = {}

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        """(status, lowercased headers dict, body bytes); reconnects once if the kept-alive
        connection was closed by the server."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, self.prefix + path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if r.will_close:
                    self.close()
                return r.status, hdrs, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _call(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        if status // 100 != 2:
            raise CnndError(status, data, hdrs)
        return status, hdrs, data

    def _json(self, method, path, obj=None):
        body = None if obj is None else json.dumps(obj).encode()
        hdrs = {} if obj is None else {"Content-Type": "application/json"}
        return json.loads(self._call(method, path, body, hdrs)[2].decode("utf-8"))

    @staticmethod
    def _model_path(prefix, model, version):
        p = "%s/models/%s" % (prefix, urllib.parse.quote(model, safe=""))
        return p if version is None else "%s/versions/%s" % (p, version)

    # ---- plain classification -------------------------------------------------
    def list_models(self):
        return self._json("GET", "/v1/models")

    def classify(self, model, images, top_k=None, version=None):
        """images: list of bytes (encoded PNG/JPEG).  One image goes as the raw body,
        several as multipart/form-data fields image0, image1, ..."""
        path = self._model_path("/v1", model, version) + "/classify"
        if top_k is not None:
            path += "?top_k=%d" % top_k
        if len(images) == 1:
            body, ctype = images[0], image_type(images[0])
        else:
            body, ctype = multipart([("image%d" % i, "image%d" % i, image_type(d), d)
                                     for i, d in enumerate(images)])
        _, _, data = self._call("POST", path, body, {"Content-Type": ctype})
        return json.loads(data.decode("utf-8"))

    # ---- KServe v2 --------------------------------------------------------------
    def live(self):
        return self.request("GET", "/v2/health/live")[0] == 200

    def ready(self):
        return self.request("GET", "/v2/health/ready")[0] == 200

    def server_metadata(self):
        return self._json("GET", "/v2")

    def model_metadata(self, model, version=None):
        return self._json("GET", self._model_path("/v2", model, version))

    def model_ready(self, model, version=None):
        path = self._model_path("/v2", model, version) + "/ready"
        return self.request("GET", path)[0] == 200

    def io_names(self, model, version=None):
        """(input name, output name) from the model metadata, cached."""
        key = (model, version)
        if key not in self._meta:
            m = self.model_metadata(model, version)
            self._meta[key] = (m["inputs"][0]["name"], m["outputs"][0]["name"])
        return self._meta[key]

    def infer(self, model, request, version=None, binary=b"", header_len=None):
        """POSTs a v2 infer request (a dict); binary, when given, follows the JSON header
        (binary data extension).  Returns the decoded answer (see decode_v2)."""
        path = self._model_path("/v2", model, version) + "/infer"
        head = json.dumps(request).encode()
        if binary:
            hdrs = {"Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(len(head))}
            body = head + binary
        else:
            hdrs, body = {"Content-Type": "application/json"}, head
        status, rh, data = self._call("POST", path, body, hdrs)
        return decode_v2(status, rh, data)

    def infer_tensor(self, model, data, shape=None, version=None, binary_output=False,
                     classification=None):
        """FP32 input: data is a nested list (shape inferred) or a flat list with shape."""
        if shape is None:
            flat, shape = flatten(data)
        else:
            flat = data
        inp, outp = self.io_names(model, version)
        out = {"name": outp, "parameters": {}}
        if binary_output:
            out["parameters"]["binary_data"] = True
        if classification:
            out["parameters"]["classification"] = classification
        req = {"inputs": [{"name": inp, "shape": shape, "datatype": "FP32", "data": flat}],
               "outputs": [out]}
        return self.infer(model, req, version)

    def infer_images(self, model, images, version=None, classification=None,
                     binary_output=False):
        """images: list of encoded PNG/JPEG bytes, sent as one BYTES input [N] in binary."""
        inp, outp = self.io_names(model, version)
        raw = pack_bytes(images)
        out = {"name": outp, "parameters": {}}
        if binary_output:
            out["parameters"]["binary_data"] = True
        if classification:
            out["parameters"]["classification"] = classification
        req = {"inputs": [{"name": inp, "shape": [len(images)], "datatype": "BYTES",
                           "parameters": {"binary_data_size": len(raw)}}],
               "outputs": [out]}
        return self.infer(model, req, version, binary=raw)


class AdminClient(Client):
    """The admin listener (default 127.0.0.1:8081): every request carries the bearer token.
    Fine-tune jobs: finetune() starts one, job()/jobs() read them, follow() polls one until
    it ends with a progress line per change, cancel() asks it to stop."""

    def __init__(self, url=DEFAULT_ADMIN_URL, token=None, token_file=DEFAULT_TOKEN_FILE,
                 timeout=30):
        super().__init__(url, timeout)
        if token is None:
            token = os.environ.get("CNND_ADMIN_TOKEN")
        if token is None:
            with open(token_file) as f:
                token = f.readline().strip()
        self.token = token

    def request(self, method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        hdrs["Authorization"] = "Bearer " + self.token
        return super().request(method, path, body, hdrs)

    def finetune(self, model, spec):
        """POST /admin/v1/models/MODEL/finetune with the spec (a dict, see docs/server.md):
        {"id": N, "state": "queued", "model": ..., "location": ...}."""
        return self._json("POST", "/admin/v1/models/%s/finetune"
                          % urllib.parse.quote(model, safe=""), spec)

    def job(self, job_id):
        return self._json("GET", "/admin/v1/jobs/%d" % int(job_id))

    def jobs(self):
        return self._json("GET", "/admin/v1/jobs")

    def cancel(self, job_id):
        """DELETE /admin/v1/jobs/ID: the job's status (cancelled at once when queued; a
        running one stops at its next step).  CnndError 409 when it already ended."""
        return self._json("DELETE", "/admin/v1/jobs/%d" % int(job_id))

    def follow(self, job_id, poll_s=1.0, out=sys.stderr, timeout_s=None):
        """Polls the job until it is final, writing progress_line() to out whenever it
        changes; returns the final status."""
        last, t0 = None, time.monotonic()
        while True:
            j = self.job(job_id)
            line = progress_line(j)
            if out is not None and line != last:
                print(line, file=out, flush=True)
                last = line
            if j["state"] in FINAL_STATES:
                return j
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise TimeoutError("job %s still %s after %g s" % (job_id, j["state"], timeout_s))
            time.sleep(poll_s)


def _pct(x):
    return "-" if x is None else "%.2f%%" % (100 * x)


def progress_line(j):
    """One line about a job: its state and phase, epoch/step, loss, accuracy, speed, ETA;
    at the end the decision with the parent's and the candidate's validation accuracy."""
    head = "job %s %s %s" % (j.get("id"), j.get("model"), j.get("state"))
    gate = "validation accuracy %s (parent version %s: %s)" % (
        _pct(j.get("val_accuracy")), j.get("parent_version"), _pct(j.get("parent_val_accuracy")))
    if j.get("state") == "succeeded":
        return "%s: version %s published; %s" % (head, j.get("version"), gate)
    if j.get("state") in FINAL_STATES:
        return "%s: %s; %s" % (head, j.get("error"), gate)
    if j.get("state") == "queued" or not j.get("total_steps"):
        return "%s (%s)" % (head, j.get("phase"))
    total = j.get("total_steps") or 1
    line = "%s (%s) epoch %s/%s step %s/%s %5.1f%%" % (
        head, j.get("phase"), j.get("epoch"), j.get("epochs"), j.get("total_step"), total,
        100.0 * (j.get("total_step") or 0) / total)
    if j.get("loss") is not None:
        line += " loss %.4f acc %s" % (j["loss"], _pct(j.get("accuracy")))
    if j.get("items_per_s"):
        line += " %.0f items/s" % j["items_per_s"]
    if j.get("eta_s") is not None:
        line += " eta %.0f s" % j["eta_s"]
    if j.get("parent_val_accuracy") is not None:
        line += " parent val %s" % _pct(j["parent_val_accuracy"])
    return line


def parse_classification(s):
    """("score:index:label" bytes or str) -> (score, index, label)."""
    if isinstance(s, bytes):
        s = s.decode("utf-8")
    score, index, label = s.split(":", 2)
    return float(score), int(index), label


def main(argv=None):
    ap = argparse.ArgumentParser(description="cnnd client (standard library only)")
    ap.add_argument("--url", default=DEFAULT_URL, help="server (default %(default)s or $CNND_URL)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("models", help="GET /v1/models")
    sub.add_parser("health", help="/v2/health/live, /v2/health/ready, /v2")
    p = sub.add_parser("metadata", help="GET /v2/models/MODEL[/versions/V]")
    p.add_argument("model")
    p.add_argument("--version")
    p = sub.add_parser("classify", help="POST /v1/models/MODEL/classify")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int)
    p.add_argument("--version")
    p = sub.add_parser("infer", help="POST /v2/models/MODEL/infer, images as BYTES (binary)")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--classification", type=int, default=3, help="top K (default 3)")
    p.add_argument("--binary-output", action="store_true", help="ask for binary output data")
    p.add_argument("--version")
    ap.add_argument("--admin-url", default=DEFAULT_ADMIN_URL,
                    help="admin listener (default %(default)s or $CNND_ADMIN_URL)")
    ap.add_argument("--token-file", default=DEFAULT_TOKEN_FILE,
                    help="admin token file (default %(default)s; $CNND_ADMIN_TOKEN wins)")
    p = sub.add_parser("finetune", help="POST /admin/v1/models/MODEL/finetune")
    p.add_argument("model")
    p.add_argument("--dataset", required=True, help="path under the server's data_root")
    p.add_argument("--format", default="idx", choices=("idx", "folder"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="another body field, e.g. --set learning_rate=0.001 (repeatable)")
    p.add_argument("--follow", action="store_true", help="follow the job until it ends")
    p = sub.add_parser("job", help="GET /admin/v1/jobs/ID")
    p.add_argument("id", type=int)
    p.add_argument("--follow", action="store_true", help="follow the job until it ends")
    sub.add_parser("jobs", help="GET /admin/v1/jobs")
    p = sub.add_parser("cancel", help="DELETE /admin/v1/jobs/ID")
    p.add_argument("id", type=int)
    a = ap.parse_args(argv)
    if a.cmd in ("finetune", "job", "jobs", "cancel"):
        return admin_main(a)
    c = Client(a.url)
    try:
        if a.cmd == "models":
            out = c.list_models()
        elif a.cmd == "health":
            out = {"live": c.live(), "ready": c.ready(), "server": c.server_metadata()}
        elif a.cmd == "metadata":
            out = c.model_metadata(a.model, a.version)
        else:
            imgs = []
            for path in a.images:
                with open(path, "rb") as f:
                    imgs.append(f.read())
            if a.cmd == "classify":
                out = c.classify(a.model, imgs, a.top_k, a.version)
            else:
                out = c.infer_images(a.model, imgs, a.version, a.classification,
                                     a.binary_output)
                for o in out.get("outputs", []):
                    if o.get("datatype") == "BYTES":
                        o["data"] = [d.decode("utf-8") if isinstance(d, bytes) else d
                                     for d in o["data"]]
    except (CnndError, OSError, ValueError) as e:
        return fail(e)
    dump(out)
    return 0


def admin_main(a):
    try:
        c = AdminClient(a.admin_url, token_file=a.token_file)
        follow = getattr(a, "follow", False)
        if a.cmd == "finetune":
            spec = {"dataset": {"format": a.format, "path": a.dataset}}
            if a.epochs is not None:
                spec["epochs"] = a.epochs
            for kv in a.set:
                key, _, val = kv.partition("=")
                try:
                    spec[key] = json.loads(val)
                except ValueError:
                    spec[key] = val
            out = c.finetune(a.model, spec)
            if follow:
                out = c.follow(out["id"])
        elif a.cmd == "job":
            out = c.follow(a.id) if follow else c.job(a.id)
        elif a.cmd == "jobs":
            out = c.jobs()
        else:
            out = c.cancel(a.id)
    except (CnndError, OSError, ValueError) as e:
        return fail(e)
    dump(out)
    return 3 if follow and out.get("state") in ("failed", "cancelled") else 0


def fail(e):
    print("cnnd_client: %s" % e, file=sys.stderr)
    return 1


def dump(out):
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    sys.exit(main())
