#!/usr/bin/env python3
"""One list of malformed and refused requests, run against BOTH listeners of a running cnnd
(the inference port and the admin port, the admin requests with the right bearer token), and
each answer checked against what the HTTP specification asks for -- the same status on both
ports, an {"error": "..."} JSON body where cnnd answers, Allow on 405.

    check_listeners.py INFERENCE_URL ADMIN_URL TOKEN_FILE INFERENCE_BODY_LIMIT
    check_listeners.py idle INFERENCE_URL ADMIN_URL SECONDS   (connection_timeout_s=SECONDS)

INFERENCE_BODY_LIMIT is classify_max_body of the running daemon; the admin body route
(finetune) takes a JSON body of at most 256 KiB (JOB_BODY_MAX).  Requests are written as
raw bytes so the malformed framing reaches the server as sent."""
import json
import socket
import sys
import threading
import time

from itlib import check, done, raw_http

JOB_BODY_MAX = 256 * 1024


def target(kind, url, tok, limit):
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    t = {"kind": kind, "host": host, "port": int(port), "limit": limit, "auth": []}
    if kind == "inference":
        t.update(get="/v2/health/live", post="/v1/models/fashion/classify",
                 post_type="image/png", version="GET /v2/models/fashion/versions/%s")
    else:
        t.update(get="/admin/v1/models", post="/admin/v1/models/fashion/finetune",
                 post_type="application/json",
                 version="POST /admin/v1/models/fashion/versions/%s/activate")
        t["auth"] = ["Authorization: Bearer " + tok]
    return t


def raw(t, data):
    """(status or None, lowercase headers, body) of one request on a fresh connection."""
    status, hdrs, body, _ = raw_http(data, timeout=10.0, addr=(t["host"], t["port"]))
    return status, hdrs, body


def req(t, method, path, headers=(), body=b"", host=True, version="HTTP/1.1"):
    """Request bytes; headers are written as given (no Content-Length is added)."""
    lines = ["%s %s %s" % (method, path, version)]
    if host:
        lines.append("Host: 127.0.0.1")
    lines += ["Connection: close"] + t["auth"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(data, size=16384):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def post(t, headers, body=b""):
    return req(t, "POST", t["post"], ["Content-Type: " + t["post_type"]] + headers, body)


def over_limit(t):
    return b"x" * (t["limit"] + 4096)


# (name, the specification's answer, request builder, what the check asks beyond the status)
CASES = [
    ("Transfer-Encoding gzip (a coding cnnd does not implement; RFC 9112 6.1)", 501,
     lambda t: post(t, ["Transfer-Encoding: gzip"], b"x"), "json"),
    ("Transfer-Encoding gzip, chunked (RFC 9112 6.1)", 501,
     lambda t: post(t, ["Transfer-Encoding: gzip, chunked"], chunked(b"{}")), "json"),
    ("Transfer-Encoding and Content-Length both (RFC 9112 6.1: may be rejected)", 400,
     lambda t: post(t, ["Transfer-Encoding: chunked", "Content-Length: 7"], chunked(b"{}")),
     "json"),
    ("two Transfer-Encoding: chunked headers (chunked applied twice; RFC 9112 6.1)", 400,
     lambda t: post(t, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                    chunked(b"{}")), "json"),
    ("two different Content-Length headers (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: 2", "Content-Length: 3"], b"{} "), "json"),
    ("two equal Content-Length headers (RFC 9110 8.6: may be rejected)", 400,
     lambda t: post(t, ["Content-Length: 2", "Content-Length: 2"], b"{}"), "json"),
    ("Content-Length not a number (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: abc"], b"{}"), "status"),
    ("negative Content-Length (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: -1"], b"{}"), "status"),
    ("Content-Length over the route's limit, body never sent (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Content-Length: 1000000000"]), "json"),
    ("Content-Length one byte over the route's limit (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Content-Length: %d" % (t["limit"] + 1)]), "json"),
    ("a chunked body over the route's limit (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Transfer-Encoding: chunked"], chunked(over_limit(t))), "json"),
    ("HTTP/1.1 without Host (RFC 9112 3.2)", 400,
     lambda t: req(t, "GET", t["get"], host=False), "json"),
    ("two Host headers (RFC 9112 3.2)", 400,
     lambda t: req(t, "GET", t["get"], ["Host: example.org"]), "json"),
    ("an unknown path (RFC 9110 15.5.5)", 404,
     lambda t: req(t, "GET", t["get"] + "/nope"), "json"),
    ("POST on a GET-only path: 405 with Allow (RFC 9110 15.5.6)", 405,
     lambda t: req(t, "POST", t["get"], ["Content-Length: 0"]), "allow GET"),
    ("DELETE on a GET-only path: 405 with Allow (RFC 9110 15.5.6)", 405,
     lambda t: req(t, "DELETE", t["get"]), "allow GET"),
    ("GET on a POST-only path: 405 with Allow (RFC 9110 15.5.6)", 405,
     lambda t: req(t, "GET", t["post"]), "allow POST"),
]
# The version segment of a path: one rule on every port (1..2147483647, digits only, no
# sign, no leading zero) -- anything else is a bad request, not an unknown version.
for v in ("0", "01", "-1", "+1", "1a", "2147483648", "99999999999"):
    CASES.append(("version segment %r in the path" % v, 400,
                  lambda t, v=v: req(t, t["version"].split()[0], t["version"].split()[1] % v,
                                     ["Content-Length: 0"] if t["kind"] == "admin" else []),
                  "json"))


def judge(t, want, extra, status, hdrs, body):
    """None when the answer is what the specification asks for, else why not."""
    if status != want:
        return "status %r, expected %d; body %r" % (status, want, body[:160])
    if extra == "status":  # the HTTP library may answer these itself, before cnnd sees them
        return None
    try:
        err = json.loads(body.decode())
        is_err = isinstance(err, dict) and isinstance(err.get("error"), str) and err["error"]
    except (ValueError, UnicodeDecodeError):
        is_err = False
    if not is_err:
        return "body is not {\"error\": \"...\"}: %r" % body[:160]
    if "json" not in hdrs.get("content-type", ""):
        return "Content-Type %r" % hdrs.get("content-type")
    if extra.startswith("allow "):
        got = {m.strip() for m in hdrs.get("allow", "").split(",") if m.strip()}
        if extra.split()[1] not in got:
            return "Allow %r does not list %s" % (hdrs.get("allow"), extra.split()[1])
    return None


def idle(inf_url, adm_url, secs):
    """A connection that sends nothing is closed after connection_timeout_s on both ports
    (RFC 9112 9.5: a server may close an idle connection), measured at the same time."""
    got = {}

    def watch(kind, url):
        t = target(kind, url, "", 0)
        s = socket.create_connection((t["host"], t["port"]), timeout=secs + 5)
        t0 = time.monotonic()
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        got[kind] = (data, time.monotonic() - t0)
        s.close()

    threads = [threading.Thread(target=watch, args=a)
               for a in (("inference", inf_url), ("admin", adm_url))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for kind in ("inference", "admin"):
        data, took = got[kind]
        check(data == b"" and secs - 0.5 <= took <= secs + 3,
              "%s port: an idle connection is closed after connection_timeout_s=%d (%.1f s)"
              % (kind, secs, took), "recv %r after %.1f s" % (data[:40], took))


def main():
    if sys.argv[1:2] == ["idle"]:
        idle(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        done()
    inf_url, adm_url, token_file, limit = sys.argv[1:5]
    with open(token_file) as f:
        tok = f.readline().strip()
    ports = [target("inference", inf_url, tok, int(limit)),
             target("admin", adm_url, tok, JOB_BODY_MAX)]
    for t in ports:  # the control: each port answers a good request with 200
        st, _, body = raw(t, req(t, "GET", t["get"]))
        check(st == 200, "%s port: GET %s -> 200 (control)" % (t["kind"], t["get"]),
              "status %r, body %r" % (st, body[:160]))
    for name, want, build, extra in CASES:
        seen = []
        for t in ports:
            status, hdrs, body = raw(t, build(t))
            why = judge(t, want, extra, status, hdrs, body)
            seen.append((status, why is None))
            check(why is None, "%s port: %s -> %d" % (t["kind"], name, want), why or "")
        check(seen[0] == seen[1], "both ports answer the same: %s" % name,
              "inference %r, admin %r" % tuple(seen))
    # After all of that both ports still serve.
    time.sleep(0.1)
    for t in ports:
        st, _, _ = raw(t, req(t, "GET", t["get"]))
        check(st == 200, "%s port still serves after the malformed requests" % t["kind"],
              "status %r" % st)
    done()


if __name__ == "__main__":
    main()
