#!/usr/bin/env python3
"""Serving while a job trains and publishes:  check_admin_load.py IMG CLIENTS BASE_S SPEC_JSON

CLIENTS threads classify IMG continuously (keep-alive, one connection each).  First BASE_S
seconds without a job (baseline), then a fine-tune job (SPEC_JSON) is submitted and runs to
its end, publishing a new version.  Checks: 0 failed requests in both phases, the job
succeeded, its version is then served.  Prints p50/p99 latency with and without the job
(measured by this Python client on the same machine, so they include the client's own
overhead)."""
import json
import sys
import threading
import time

from adminlib import Admin
from itlib import bad, check, client, done, read

MODEL = "fashion"


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def main():
    img, nclients, base_s, spec = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
        json.loads(sys.argv[4])
    data = read(img)
    stop = threading.Event()
    recs = [[] for _ in range(nclients)]  # (start, seconds, status, version)

    def loop(i):
        c = client(timeout=30)
        out = recs[i]
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                st, _, body = c.request("POST", "/v1/models/%s/classify" % MODEL, data,
                                        {"Content-Type": "image/png"})
                v = json.loads(body)["version"] if st == 200 else None
            except (OSError, ValueError) as e:
                st, v = "error %r" % e, None
                c.close()
            out.append((t0, time.monotonic() - t0, st, v))
        c.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(nclients)]
    for t in ts:
        t.start()
    time.sleep(1.0)  # warm up: every connection made, workers busy
    b0 = time.monotonic()
    time.sleep(base_s)
    b1 = time.monotonic()
    adm = Admin()
    st, j, _ = adm.submit(MODEL, spec)
    if st != 202:
        stop.set()
        for t in ts:
            t.join()
        bad("job not accepted: %d %s" % (st, j))
        done()
    jid = j["id"]
    started = finished = None
    while True:
        s = adm.job(jid)
        if s["state"] == "running" and started is None:
            started = time.monotonic()
        if s["state"] not in ("queued", "running"):
            finished = time.monotonic()
            break
        time.sleep(0.05)
    time.sleep(1.0)  # answers from the new version
    stop.set()
    for t in ts:
        t.join()
    allr = [r for rs in recs for r in rs]
    fails = [r for r in allr if r[2] != 200]
    base = [r[1] for r in allr if b0 <= r[0] < b1]
    during = [r[1] for r in allr if started is not None and started <= r[0] < finished]
    after = [r for r in allr if r[0] >= finished + 0.2]
    print("latency without a job: %d requests in %.1f s, p50 %.1f ms, p99 %.1f ms"
          % (len(base), b1 - b0, pct(base, 50) * 1e3, pct(base, 99) * 1e3))
    print("latency while job %d ran and published (%.1f s): %d requests, p50 %.1f ms, "
          "p99 %.1f ms" % (jid, (finished - started) if started else 0, len(during),
                           pct(during, 50) * 1e3, pct(during, 99) * 1e3))
    print("job %d: %s, version %s, val acc %s, %.0f training items/s while serving"
          % (jid, s["state"], s["version"], s["val_accuracy"], s["items_per_s"] or 0))
    check(s["state"] == "succeeded" and s["version"],
          "the job trained and published version %s while %d clients classified"
          % (s["version"], nclients), str(s.get("error")))
    check(not fails, "%d clients, %d requests before, during and after the job: 0 failed"
          % (nclients, len(allr)), "%d failed, first: %s" % (len(fails), fails[:2]))
    check(len(during) > 10 * nclients, "clients kept being served during the job (%d "
          "requests)" % len(during))
    check(after and all(r[3] == s["version"] for r in after),
          "after the publish every answer comes from version %s (%d answers)"
          % (s["version"], len(after)))
    done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        bad("load check stopped: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
