#!/usr/bin/env python3
"""One list of malformed and refused requests, run against BOTH listeners of a running cnnd
(the inference port and the admin port, the admin requests with the right bearer token), and
each answer checked against what the HTTP specification asks for -- the same status on both
ports, an {"error": "..."} JSON body where cnnd answers, Allow on 405, the connection closed
where the framing is in doubt -- and a table of case -> status and body kind per port
printed (libmicrohttpd answers a few malformed requests itself, with HTML: docs/server.md).

    check_listeners.py INFERENCE_URL ADMIN_URL TOKEN_FILE INFERENCE_BODY_LIMIT
    check_listeners.py idle INFERENCE_URL ADMIN_URL SECONDS   (connection_timeout_s=SECONDS)

INFERENCE_BODY_LIMIT is classify_max_body of the running daemon; the admin body route
(finetune) takes a JSON body of at most 256 KiB (JOB_BODY_MAX).  Requests are written as
raw bytes so the malformed framing reaches the server as sent."""
import json
import re
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
    """(status or None, lowercase headers, body) of one request on a fresh connection; a
    connection reset while sending is (None, {}, b"reset")."""
    try:
        status, hdrs, body, _ = raw_http(data, timeout=20.0, addr=(t["host"], t["port"]))
    except OSError:
        return None, {}, b"reset"
    return status, hdrs, body


def answers_after(t, data):
    """Number of HTTP answers on one connection to data followed by a good keep-alive GET:
    1 when cnnd closed the connection after refusing data, 2 when it kept reading."""
    follow = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n"
              % (t["get"], "".join(h + "\r\n" for h in t["auth"]))).encode()
    sock = socket.create_connection((t["host"], t["port"]), timeout=5)
    buf = b""
    try:
        sock.sendall(data + follow)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return len(re.findall(rb"(?m)^HTTP/1\.[01] \d\d\d ", buf))


def req(t, method, path, headers=(), body=b"", host=True, version="HTTP/1.1", first=(),
        close=True):
    """Request bytes; headers are written as given (no Content-Length is added), `first`
    ones right after the request line."""
    lines = ["%s %s %s" % (method, path, version)] + list(first)
    if host:
        lines.append("Host: 127.0.0.1")
    lines += (["Connection: close"] if close else []) + t["auth"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def pad_headers(t, total, close=True):
    """A GET whose header block (request line to the empty line) is exactly total bytes."""
    base = len(req(t, "GET", t["get"], ["X-Pad: "], close=close))
    return req(t, "GET", t["get"], ["X-Pad: " + "a" * (total - base)], close=close)


def chunked(data, size=16384):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


def post(t, headers, body=b"", close=True):
    return req(t, "POST", t["post"], ["Content-Type: " + t["post_type"]] + headers, body,
               close=close)


def over_limit(t):
    return b"x" * (t["limit"] + 4096)


def raw_chunks(t, body):
    """A POST with Transfer-Encoding: chunked and the chunked body bytes as given."""
    return post(t, ["Transfer-Encoding: chunked"], body)


def big_chunked(t):
    """80 MiB in 1 MiB chunks, far over both ports' limits."""
    mib = b"x" * (1 << 20)
    return raw_chunks(t, (b"100000\r\n" + mib + b"\r\n") * 80 + b"0\r\n\r\n")


# (name, the specification's answer, request builder, what the check asks beyond the status:
# "json" an {"error"} body; "json close" also the connection closed (sent without
# "Connection: close", a pipelined request after it gets no answer); "mhd" libmicrohttpd answers itself before cnnd sees the request,
# with its own fixed HTML body -- 0.9.75 has no option to replace it -- so only the status)
CASES = [
    ("control: 80 header fields, 16 KiB (the raw-bytes fold check passes them)", 200,
     lambda t: req(t, "GET", t["get"], ["X-H%d: %s" % (i, "v" * 200) for i in range(80)]),
     "ok"),
    ("control: a cookie, OWS around a field value, a bare LF line end (RFC 9112 2.2)", 200,
     lambda t: req(t, "GET", t["get"], ["Cookie: a=b; c=d", "X-A:  1 ", "X-B: 2\nX-C: 3"]),
     "ok"),
    ("whitespace between a header name and its colon: 'Host : ...' (RFC 9112 5.1)", 400,
     lambda t: req(t, "GET", t["get"], ["Host : 127.0.0.1"], host=False, close=False),
     "json close"),
    ("whitespace before the colon of another field: 'X-Trace : 1' (RFC 9112 5.1)", 400,
     lambda t: req(t, "GET", t["get"], ["X-Trace : 1"], close=False), "json close"),
    ("a tab before the colon: 'Content-Type\\t: ...' (RFC 9112 5.1)", 400,
     lambda t: post(t, ["Content-Type\t: text/plain", "Content-Length: 2"], b"{}", False),
     "json close"),
    ("obs-fold: a field continued on a line starting with SP (RFC 9112 5.2)", 400,
     lambda t: req(t, "GET", t["get"], ["X-Trace: a", " b"], close=False), "json close"),
    ("obs-fold with HTAB, of Content-Length (RFC 9112 5.2)", 400,
     lambda t: post(t, ["Content-Length: 1", "\t0"], b"{}" + b" " * 8, False), "json close"),
    ("obs-fold right after the request line (RFC 9112 2.2: reject)", 400,
     lambda t: req(t, "GET", t["get"], first=[" X-Trace: a"], close=False), "json close"),
    ("chunk size not hexadecimal: 'zz' (RFC 9112 7.1)", 400,
     lambda t: raw_chunks(t, b"zz\r\n{}\r\n0\r\n\r\n"), "mhd"),
    ("negative chunk size: '-2' (RFC 9112 7.1)", 400,
     lambda t: raw_chunks(t, b"-2\r\n{}\r\n0\r\n\r\n"), "mhd"),
    ("chunk data longer than its size, no CRLF after it (RFC 9112 7.1)", 400,
     lambda t: raw_chunks(t, b"2\r\n{}xx\r\n0\r\n\r\n"), "mhd"),
    ("chunk size overflowing 64 bits: 17 hex digits (RFC 9112 7.1)", 413,
     lambda t: raw_chunks(t, b"fffffffffffffffff\r\n{}\r\n0\r\n\r\n"), "mhd"),
    ("an oversize chunked body: 80 MiB in 1 MiB chunks (RFC 9110 15.5.14)", 413,
     big_chunked, "json"),
    ("a header line without a colon (RFC 9112 5.1)", 400,
     lambda t: req(t, "GET", t["get"], ["NoColonHere"]), "mhd"),
    ("64 KiB of request headers, over libmicrohttpd's 64 KiB pool (RFC 6585 5)", 431,
     lambda t: req(t, "GET", t["get"], ["X-Big: " + "a" * 65536]), "mhd"),
    ("32 KiB of request headers, request line included: at cnnd's limit", 200,
     lambda t: pad_headers(t, 32768), "ok"),
    ("one byte over cnnd's 32 KiB of request headers (RFC 6585 5)", 431,
     lambda t: pad_headers(t, 32769, close=False), "json close"),
    ("48 KiB of request headers: cnnd's 431, under libmicrohttpd's pool (RFC 6585 5)", 431,
     lambda t: pad_headers(t, 48 * 1024, close=False), "json close"),
    ("Transfer-Encoding gzip (a coding cnnd does not implement; RFC 9112 6.1)", 501,
     lambda t: post(t, ["Transfer-Encoding: gzip"], b"x", False), "json close"),
    ("Transfer-Encoding gzip, chunked (RFC 9112 6.1)", 501,
     lambda t: post(t, ["Transfer-Encoding: gzip, chunked"], chunked(b"{}"), False),
     "json close"),
    ("Transfer-Encoding and Content-Length both (RFC 9112 6.1: may be rejected)", 400,
     lambda t: post(t, ["Transfer-Encoding: chunked", "Content-Length: 7"], chunked(b"{}"),
                    False), "json close"),
    ("two Transfer-Encoding: chunked headers (chunked applied twice; RFC 9112 6.1)", 400,
     lambda t: post(t, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
                    chunked(b"{}"), False), "json close"),
    ("two different Content-Length headers (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: 2", "Content-Length: 3"], b"{} ", False),
     "json close"),
    ("two equal Content-Length headers (RFC 9110 8.6: may be rejected)", 400,
     lambda t: post(t, ["Content-Length: 2", "Content-Length: 2"], b"{}", False),
     "json close"),
    ("Content-Length not a number (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: abc"], b"{}"), "mhd"),
    ("negative Content-Length (RFC 9112 6.3)", 400,
     lambda t: post(t, ["Content-Length: -1"], b"{}"), "mhd"),
    ("Content-Length over the route's limit, body never sent (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Content-Length: 1000000000"]), "json"),
    ("Content-Length one byte over the route's limit (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Content-Length: %d" % (t["limit"] + 1)]), "json"),
    ("a chunked body over the route's limit (RFC 9110 15.5.14)", 413,
     lambda t: post(t, ["Transfer-Encoding: chunked"], chunked(over_limit(t))), "json"),
    ("HTTP/1.1 without Host (RFC 9112 3.2)", 400,
     lambda t: req(t, "GET", t["get"], host=False, close=False), "json close"),
    ("two Host headers (RFC 9112 3.2)", 400,
     lambda t: req(t, "GET", t["get"], ["Host: example.org"], close=False), "json close"),
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
    if extra in ("ok", "status", "mhd"):  # controls; the HTTP library answers these itself
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
    table = []
    for name, want, build, extra in CASES:
        seen, cells = [], []
        for t in ports:
            data = build(t)
            status, hdrs, body = raw(t, data)
            why = judge(t, want, extra, status, hdrs, body)
            kind = ("json" if body[:1] == b"{" else "html" if body[:1] == b"<" else
                    "reset" if body == b"reset" else "empty" if not body else
                    "html, head sent twice" if body.startswith(b"HTTP/1.1 ") else "text")
            if why is None and extra == "json close":
                n = answers_after(t, data)
                if n != 1:
                    why = "%d answers: the connection stayed open after the refusal" % n
                kind += ", closed"
            seen.append((status, why is None))
            cells.append("%s %s" % (status, kind))
            check(why is None, "%s port: %s -> %d" % (t["kind"], name, want), why or "")
        check(seen[0] == seen[1], "both ports answer the same: %s" % name,
              "inference %r, admin %r" % tuple(seen))
        table.append((name, cells))
    width = max(len(n) for n, _ in table)
    print("%-*s | %-18s | %s" % (width, "malformed or refused request", "inference port",
                                 "admin port"))
    for name, cells in table:
        print("%-*s | %-18s | %s" % (width, name, cells[0], cells[1]))
    # After all of that both ports still serve.
    time.sleep(0.1)
    for t in ports:
        st, _, _ = raw(t, req(t, "GET", t["get"]))
        check(st == 200, "%s port still serves after the malformed requests" % t["kind"],
              "status %r" % st)
    done()


if __name__ == "__main__":
    main()
