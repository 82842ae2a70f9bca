#!/usr/bin/env python3
"""Shutdown with requests in flight:
  check_shutdown.py drain MODEL N IMG    N classify requests are sent on N connections, then
      SIGTERM: every one must be answered 200, readiness turns 503 (or the connection is
      closed), new connections are refused; most answers must arrive after the signal
  check_shutdown.py second MODEL N IMG   the same, then a second SIGTERM: cnnd exits within
      2 s without waiting for the queue
The caller waits for the exit status."""
import os
import signal
import socket
import sys
import time

from itlib import PID, check, done, host_port, metric_sum, metrics, raw_http, read


def send_all(model, n, data):
    head = ("POST /v1/models/%s/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            "image/png\r\nContent-Length: %d\r\n\r\n" % (model, len(data))).encode()
    socks = []
    for _ in range(n):
        s = socket.create_connection(host_port(), timeout=60)
        s.sendall(head + data)
        socks.append(s)
    return socks


def read_status(s):
    """(status or None, arrival time) of the answer on s."""
    buf = b""
    while b"\r\n" not in buf:
        try:
            chunk = s.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    t = time.monotonic()
    s.close()
    if buf.startswith(b"HTTP/1.1 ") or buf.startswith(b"HTTP/1.0 "):
        return int(buf.split()[1]), t
    return None, t


def wait_arrived(model, n, limit_s=20.0):
    """Waits until all n requests reached the daemon (in flight or answered), so the signal
    comes after they were accepted: on a loaded machine a fixed sleep let SIGTERM overtake
    the last connections, which then got the draining 503 (correct, but not this test)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        m = metrics()
        busy = (metric_sum(m, "cnnd_requests_in_flight") or 0) - 1  # minus this scrape
        answered = metric_sum(m, "cnnd_requests_total", 'model="%s"' % model) or 0
        if busy + answered >= n:
            return
        time.sleep(0.02)


def exited():
    try:
        with open("/proc/%d/stat" % PID) as f:
            return f.read().split(") ", 1)[1][0] in "ZX"
    except FileNotFoundError:
        return True


def drain(model, n, data):
    keep = socket.create_connection(host_port(), timeout=10)
    keep.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
    first = keep.recv(4096)
    socks = send_all(model, n, data)
    wait_arrived(model, n)
    t_sig = time.monotonic()
    os.kill(PID, signal.SIGTERM)
    time.sleep(0.1)
    # Readiness on a connection opened before the signal: 503, or closed by the server.
    try:
        keep.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        again = keep.recv(4096)
    except OSError:
        again = b""
    keep.close()
    st = again.split()[1] if again.startswith(b"HTTP/") else b"closed"
    check(first.startswith(b"HTTP/1.1 200") and st in (b"503", b"closed"),
          "readiness after SIGTERM on a kept-alive connection: %s" % st.decode())
    # A new connection: refused, or answered 503.
    t0 = time.monotonic()
    try:
        status, _, _, _ = raw_http(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n"
                                   b"Connection: close\r\n\r\n", timeout=3)
        what = "answered %s" % status if status else "closed without an answer"
    except OSError as e:
        status, what = None, type(e).__name__
    secs = time.monotonic() - t0
    check(status in (None, 503) and secs < 1,
          "new connection while draining: %s after %.2f s" % (what, secs),
          "refused or 503 expected at once")
    res = [read_status(s) for s in socks]
    codes = [r[0] for r in res]
    after = sum(1 for r in res if r[1] > t_sig)
    check(all(c == 200 for c in codes), "SIGTERM with %d requests in flight: every one answered "
          "200" % n, "statuses %r" % sorted(set(map(str, codes))))
    check(after >= n // 2, "%d of %d answers came after the signal (the drain was exercised)"
          % (after, n))


def second(model, n, data):
    socks = send_all(model, n, data)
    time.sleep(0.3)
    os.kill(PID, signal.SIGTERM)
    time.sleep(0.2)
    t0 = time.monotonic()
    os.kill(PID, signal.SIGTERM)
    while not exited() and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    secs = time.monotonic() - t0
    check(exited() and secs < 2, "a second SIGTERM exits at once (%.2f s)" % secs)
    for s in socks:
        s.close()


def main():
    cmd, model, n, img = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    data = read(img)
    {"drain": drain, "second": second}[cmd](model, n, data)
    done()


if __name__ == "__main__":
    main()
