"""Helpers of the admin integration tests: an admin client (bearer token read from the file
cnnd wrote, $CNND_ADMIN_TOKEN_FILE; listener at $CNND_ADMIN_URL), job polling that records
the states it saw, raw requests on a socket, and repository listings."""
import http.client
import json
import os
import socket
import time

ADMIN_URL = os.environ.get("CNND_ADMIN_URL", "")
TOKEN_FILE = os.environ.get("CNND_ADMIN_TOKEN_FILE", "")


def token():
    with open(TOKEN_FILE) as f:
        return f.readline().strip()


def admin_host_port():
    u = ADMIN_URL.split("//", 1)[1].split("/", 1)[0]
    h, p = u.rsplit(":", 1)
    return h, int(p)


class Admin:
    """Keep-alive admin connection; request() reconnects after the server closed it."""

    def __init__(self, tok=None, timeout=120):
        self.tok = token() if tok is None else tok
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, auth=True):
        """(status, headers with lowercase names, body bytes)."""
        hdrs = dict(headers or {})
        if auth and self.tok is not None:
            hdrs["Authorization"] = "Bearer " + self.tok
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            if self.conn is None:
                h, p = admin_host_port()
                self.conn = http.client.HTTPConnection(h, p, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return out
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise RuntimeError("unreachable")

    def json(self, method, path, body=None, headers=None, auth=True):
        """(status, parsed JSON or None, headers)."""
        st, h, b = self.request(method, path, body, headers, auth)
        try:
            return st, json.loads(b.decode()) if b else None, h
        except ValueError:
            return st, None, h

    def submit(self, model, spec, content_type=None):
        hdrs = {"Content-Type": content_type} if content_type else None
        return self.json("POST", "/admin/v1/models/%s/finetune" % model, spec, hdrs)

    def job(self, jid):
        st, j, _ = self.json("GET", "/admin/v1/jobs/%d" % jid)
        if st != 200:
            raise RuntimeError("GET job %d answered %d" % (jid, st))
        return j

    def wait(self, jid, timeout=240, poll=0.05, until=None):
        """Polls job jid until it is final (or until(status) is true); returns (last status,
        the list of distinct states seen in order, [(epoch, total_step), ...] seen)."""
        seen, progress = [], []
        deadline = time.monotonic() + timeout
        while True:
            j = self.job(jid)
            if not seen or seen[-1] != j["state"]:
                seen.append(j["state"])
            if j["state"] == "running":
                progress.append((j["epoch"], j["total_step"]))
            if until and until(j):
                return j, seen, progress
            if j["state"] not in ("queued", "running"):
                return j, seen, progress
            if time.monotonic() > deadline:
                raise RuntimeError("job %d still %s after %d s" % (jid, j["state"], timeout))
            time.sleep(poll)


def raw_admin(data, timeout=5.0):
    """Sends bytes on a fresh admin connection; (status or None, seconds to the first byte,
    whole answer)."""
    s = socket.create_connection(admin_host_port(), timeout=timeout)
    t0 = time.monotonic()
    first, buf = None, b""
    try:
        s.sendall(data)
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            if first is None:
                first = time.monotonic() - t0
            buf += chunk
            if b"\r\n\r\n" in buf:
                break
    finally:
        s.close()
    if not buf.startswith(b"HTTP/"):
        return None, first, buf
    return int(buf.split(b" ", 2)[1]), first, buf


def versions_on_disk(repo, model):
    """Sorted numeric version folder names under repo/model."""
    d = os.path.join(repo, model)
    return sorted(int(n) for n in os.listdir(d) if n.isdigit() and not n.startswith("0"))


def temp_folders(repo, model):
    d = os.path.join(repo, model)
    return sorted(n for n in os.listdir(d) if n.startswith(".publish-"))
