#!/usr/bin/env python3
"""Hot swap under load:  check_swap.py MODEL MODEL_DIR IMG CLIENTS V=FILE...
CLIENTS threads classify IMG continuously while each V=FILE is published into MODEL_DIR
(the way a trainer does it: written into a temp folder, renamed into place as MODEL_DIR/V)
followed by SIGHUP; after each publish we wait until answers come from version V.
Checks: no failed request, every answer equals `cnn predict` of the version it names,
versions never go backwards on one connection, RSS (VmRSS) from the middle to the end of the
swaps grows by less than half of what leaking those versions would add (at least 5%)."""
import json
import os
import shutil
import signal
import sys
import threading
import time

from itlib import (PID, bad, check, client, cnn_predict, done, metric_sum, metrics, preds_of, read,
                   same_preds)


def rss_kb():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled(model):
    """Waits (under load) until only the live version of model is loaded: old versions are
    freed once their last request ends, which a fixed sleep may not cover on a busy machine."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (metric_sum(metrics(), "cnnd_loaded_versions", 'model="%s"' % model) or 0) <= 1:
            break
        time.sleep(0.05)
    time.sleep(0.2)


def publish(model_dir, version, src):
    tmp = os.path.join(model_dir, ".tmp-%d" % version)
    os.makedirs(tmp)
    shutil.copyfile(src, os.path.join(tmp, "model.cnn"))
    os.rename(tmp, os.path.join(model_dir, str(version)))


def main():
    model, model_dir, img, nclients = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pubs = [(int(v), f) for v, f in (a.split("=", 1) for a in sys.argv[5:])]
    first_file = os.path.join(model_dir, "1", "model.cnn")
    refs = {1: cnn_predict(first_file, [img])[img]}
    for v, f in pubs:
        refs[v] = cnn_predict(f, [img])[img]
    data = read(img)
    stop = threading.Event()
    stats = [dict(n=0, fail=[], wrong=[], backwards=0, versions=set()) for _ in range(nclients)]

    def loop(i):
        st = stats[i]
        c = client(timeout=30)
        last = 0
        while not stop.is_set():
            try:
                status, _, body = c.request("POST", "/v1/models/%s/classify?top_k=10" % model,
                                            data, {"Content-Type": "image/png"})
            except OSError as e:
                st["fail"].append(repr(e))
                c.close()
                continue
            st["n"] += 1
            if status != 200:
                st["fail"].append("%d %s" % (status, body[:100]))
                continue
            r = json.loads(body)
            v = int(r["version"])
            st["versions"].add(v)
            if v < last:
                st["backwards"] += 1
            last = v
            why = same_preds(preds_of(r["results"][0]), refs[v]) if v in refs else "unknown"
            if why:
                st["wrong"].append("v%d: %s" % (v, why))
        c.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(nclients)]
    for t in ts:
        t.start()
    time.sleep(1.5)  # warm: every connection and worker has run
    probe = client()
    t0 = time.monotonic()
    slow = []
    half = len(pubs) // 2
    rss0 = None
    for i, (v, f) in enumerate(pubs):
        if i == half:  # the first half warms the allocator up to its steady state
            settled(model)
            rss0 = rss_kb()
        publish(model_dir, v, f)
        os.kill(PID, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = probe.classify(model, [data])
            if int(r["version"]) == v:
                break
            time.sleep(0.01)
        else:
            slow.append(v)
    secs = time.monotonic() - t0
    settled(model)
    rss1 = rss_kb()
    stop.set()
    for t in ts:
        t.join()
    probe.close()
    n = sum(s["n"] for s in stats)
    fails = [f for s in stats for f in s["fail"]]
    wrong = [w for s in stats for w in s["wrong"]]
    seen = set().union(*(s["versions"] for s in stats))
    check(not slow, "%d versions published, each live within 10 s after SIGHUP (%.1f s total)"
          % (len(pubs), secs), "not live: %r" % slow)
    check(not fails, "%d clients, %d requests during the swaps: 0 failed" % (nclients, n),
          "%d failed, first: %s" % (len(fails), fails[:2]))
    check(n > 20 * len(pubs), "clients kept classifying during the swaps (%d requests)" % n)
    check(not wrong, "every answer equals cnn predict of the version it names",
          "%d wrong, first: %s" % (len(wrong), wrong[:2]))
    check(sum(s["backwards"] for s in stats) == 0,
          "versions never went backwards on a connection")
    check(len(seen) >= len(pubs) // 2, "clients saw %d different versions" % len(seen))
    # RSS is compared between the middle and the end of the swaps: a leak grows with every
    # swap, the allocator's one-time warm-up (new arenas, ~1.5 MB here) does not.  The leak
    # guarded against is old versions never freed, which would add their files' sizes; the
    # bound is half that (at least 5%).  t_hotswap.sh also checks that the log says every
    # replaced version was freed.
    leak_kb = sum(os.path.getsize(f) for _, f in pubs[half:]) / 1024.0
    bound = max(0.05 * rss0, 0.5 * leak_kb)
    check(rss1 - rss0 <= bound,
          "RSS over the last %d swaps: %d -> %d kB (%+.1f%%), within %d kB (all %d versions "
          "leaked would add %d kB)" % (len(pubs) - half, rss0, rss1,
                                        100.0 * (rss1 - rss0) / rss0, bound, len(pubs) - half,
                                        leak_kb))
    done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 -- a crash of the checker is a failure too
        bad("hot swap check stopped: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
