#!/usr/bin/env python3
"""Load through nginx while a replica dies:  check_replicas.py URL IMG CLIENTS SECONDS KILL_AT PID

CLIENTS threads POST IMG to URL/v1/models/fashion/classify continuously (keep-alive, one
connection each) for SECONDS; at KILL_AT seconds PID (one cnnd replica) gets SIGKILL.
Prints the status counts before and after the kill; PASS when every request was answered
200 (nginx retried the ones the dead replica dropped on the other one)."""
import collections
import http.client
import os
import signal
import sys
import threading
import time
import urllib.parse

from itlib import bad, check, done, read


def main():
    url, img = sys.argv[1], sys.argv[2]
    nclients, seconds, kill_at, pid = int(sys.argv[3]), float(sys.argv[4]), \
        float(sys.argv[5]), int(sys.argv[6])
    u = urllib.parse.urlsplit(url)
    data = read(img)
    stop = threading.Event()
    recs = [[] for _ in range(nclients)]  # (start, status)

    def loop(i):
        c = None
        out = recs[i]
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                if c is None:
                    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                c.request("POST", "/v1/models/fashion/classify", data,
                          {"Content-Type": "image/png"})
                r = c.getresponse()
                r.read()
                st = r.status
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException) as e:
                st = "error %s" % type(e).__name__
                if c:
                    c.close()
                c = None
            out.append((t0, st))
        if c:
            c.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(nclients)]
    t_start = time.monotonic()
    for t in ts:
        t.start()
    time.sleep(kill_at)
    t_kill = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    time.sleep(max(0.0, seconds - kill_at))
    stop.set()
    for t in ts:
        t.join()
    allr = [r for rs in recs for r in rs]
    before = collections.Counter(str(st) for t0, st in allr if t0 < t_kill)
    after = collections.Counter(str(st) for t0, st in allr if t0 >= t_kill)
    print("concurrency %d, %.1f s, SIGKILL to replica pid %d at %.1f s" %
          (nclients, time.monotonic() - t_start, pid, t_kill - t_start))
    print("status counts before the kill: %s" % dict(before))
    print("status counts from the kill on: %s" % dict(after))
    check(sum(after.values()) > nclients, "requests kept flowing after the kill (%d)"
          % sum(after.values()))
    n = len(allr)
    ok = sum(1 for _, st in allr if st == 200)
    check(ok == n, "a replica killed with SIGKILL at concurrency %d: %d of %d requests "
          "answered 200, none lost" % (nclients, ok, n),
          "statuses: %s" % dict(before + after))
    done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        bad("replica load check stopped: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
