#!/usr/bin/env python3
"""Concurrency checks against a running cnnd:
  batching MODEL MODEL_FILE CLIENTS ROUNDS IMG...   concurrent classify: the batch-size
      histogram mean > 4 and every answer equals the same image classified alone (and
      `cnn predict`)
  queue-full MODEL CLIENTS IMG      with a tiny queue, a burst gets 503 + Retry-After at
      once (never a hang) while some requests succeed
  expire MODEL CLIENTS IMG          with a short request timeout, queued requests that wait
      too long get 503, the expired counter grows by as many, and they are not computed
      (the batch-size histogram's sum grows only by the successful ones)"""
import sys
import threading
import time

from itlib import (batch_hist, check, client, cnn_predict, done, is_error_json, metric_sum,
                   metrics, preds_of, read, same_preds)


def classify_raw(c, model, data, top_k=None):
    path = "/v1/models/%s/classify" % model + ("?top_k=%d" % top_k if top_k else "")
    t0 = time.monotonic()
    status, hdrs, body = c.request("POST", path, data, {"Content-Type": "image/png"})
    return status, hdrs, body, time.monotonic() - t0


def run_clients(n, fn):
    """Runs fn(i, barrier) on n threads; returns their results (exceptions as values)."""
    out = [None] * n
    bar = threading.Barrier(n)

    def wrap(i):
        try:
            out[i] = fn(i, bar)
        except Exception as e:  # noqa: BLE001 -- reported by the caller
            out[i] = e
    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def batching(model, model_file, nclients, rounds, imgs):
    import json
    data = [read(p) for p in imgs]
    ref = cnn_predict(model_file, imgs)
    c = client()
    single = []
    for p, d in zip(imgs, data):
        r = c.classify(model, [d], top_k=10)
        single.append(preds_of(r["results"][0]))
    c.close()
    why = None
    for p, s in zip(imgs, single):
        why = why or same_preds(s, ref[p])
    check(why is None, "%d images classified one at a time equal cnn predict" % len(imgs), why)
    before = batch_hist(metrics(), model)
    if not check(before is not None, "/metrics has a batch-size histogram for model %s" % model):
        return

    def client_loop(i, bar):
        cc = client()
        got = []
        bar.wait()
        for k in range(rounds):
            j = (i + k) % len(data)
            st, _, body, _ = classify_raw(cc, model, data[j], top_k=10)
            got.append((j, st, body))
        cc.close()
        return got

    t0 = time.monotonic()
    res = run_clients(nclients, client_loop)
    secs = time.monotonic() - t0
    after = batch_hist(metrics(), model)
    errors = [r for r in res if isinstance(r, Exception)]
    answers = [a for r in res if not isinstance(r, Exception) for a in r]
    non200 = [a for a in answers if a[1] != 200]
    check(not errors and not non200 and len(answers) == nclients * rounds,
          "%d clients x %d requests: all answered 200 (%.1f s)" % (nclients, rounds, secs),
          "%d exceptions (%s), %d non-200 (%s)" % (len(errors), errors[:1], len(non200),
                                                   [a[1] for a in non200[:3]]))
    mism = []
    for j, st, body in answers:
        if st != 200:
            continue
        w = same_preds(preds_of(json.loads(body)["results"][0]), single[j])
        if w:
            mism.append("%s: %s" % (imgs[j].split("/")[-1], w))
    check(not mism, "every concurrent answer equals the single-image result (<= 1e-5)",
          "%d differ, first: %s" % (len(mism), mism[:1]))
    dsum, dcount = after[0] - before[0], after[1] - before[1]
    mean = dsum / dcount if dcount else 0
    check(dsum == len(answers), "batch-size histogram sum grew by the %d images computed"
          % len(answers), "grew by %g" % dsum)
    check(mean > 4, "mean batch size %.2f > 4 over %d batches" % (mean, dcount))


def queue_full(model, nclients, img):
    data = read(img)

    def one(i, bar):
        cc = client(timeout=60)
        bar.wait()
        r = classify_raw(cc, model, data)
        cc.close()
        return r

    res = run_clients(nclients, one)
    errors = [r for r in res if isinstance(r, Exception)]
    check(not errors, "burst of %d: every request answered (no hang, no reset)" % nclients,
          "%d failed: %r" % (len(errors), errors[:1]))
    res = [r for r in res if not isinstance(r, Exception)]
    full = [r for r in res if r[0] == 503]
    good = [r for r in res if r[0] == 200]
    other = [r for r in res if r[0] not in (200, 503)]
    check(full and good and not other, "burst of %d on a tiny queue: %d x 200, %d x 503"
          % (nclients, len(good), len(full)), "other statuses %r" % [r[0] for r in other])
    if not full:
        return
    check(all("retry-after" in r[1] and r[1]["retry-after"].strip().isdigit() for r in full),
          "every 503 has a Retry-After header in seconds",
          repr([r[1].get("retry-after") for r in full][:5]))
    check(all(is_error_json(r[2]) for r in full), "every 503 body is {\"error\": ...}")
    slowest_503 = max(r[3] for r in full)
    slowest_200 = max(r[3] for r in good) if good else 0
    check(slowest_503 < 0.5, "queue-full 503s answered at once: slowest %.0f ms (slowest 200: "
          "%.0f ms)" % (slowest_503 * 1e3, slowest_200 * 1e3))


def expire(model, nclients, img):
    data = read(img)
    m0 = metrics()
    exp0 = metric_sum(m0, r".*expired.*")
    h0 = batch_hist(m0, model)
    if not check(exp0 is not None and h0 is not None,
                 "/metrics has an expired counter and a batch-size histogram"):
        return

    def one(i, bar):
        cc = client(timeout=60)
        bar.wait()
        r = classify_raw(cc, model, data)
        cc.close()
        return r

    res = run_clients(nclients, one)
    errors = [r for r in res if isinstance(r, Exception)]
    res = [r for r in res if not isinstance(r, Exception)]
    n503 = sum(1 for r in res if r[0] == 503)
    n200 = sum(1 for r in res if r[0] == 200)
    check(not errors and n503 + n200 == nclients and n503 > 0 and n200 > 0,
          "%d requests on a slow model with a short timeout: %d x 200, %d x 503 (expired)"
          % (nclients, n200, n503), "statuses %r, exceptions %r" % ([r[0] for r in res], errors[:1]))
    time.sleep(0.2)  # the worker may still be dropping the last expired items
    m1 = metrics()
    exp1 = metric_sum(m1, r".*expired.*")
    h1 = batch_hist(m1, model)
    check(exp1 - exp0 == n503, "expired counter grew by the %d requests answered 503" % n503,
          "grew by %g" % (exp1 - exp0))
    check(h1[0] - h0[0] == n200, "only the %d answered requests were computed (batch-size "
          "histogram sum)" % n200, "sum grew by %g" % (h1[0] - h0[0]))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "batching":
        batching(args[0], args[1], int(args[2]), int(args[3]), args[4:])
    elif cmd == "queue-full":
        queue_full(args[0], int(args[1]), args[2])
    elif cmd == "expire":
        expire(args[0], int(args[1]), args[2])
    else:
        sys.exit("unknown command " + cmd)
    done()


if __name__ == "__main__":
    main()
