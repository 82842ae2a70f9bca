#!/usr/bin/env python3
"""The admin API against a running cnnd:  check_admin.py STEP [options]

  auth      no token, wrong token (same length, other lengths), token in the query -> 401
            with WWW-Authenticate: Bearer, decided before the body; the token never logged
  paths     escape attempts for dataset.path -> 400 naming the field, no job made; a
            missing dataset -> 404 naming the path; a text/plain body -> 415
  finetune  the live model fine-tuned on an IDX subset: queued -> running -> succeeded with
            per-epoch progress, validation accuracy, the new version served (= cnn predict
            of its file), lineage in its metadata, training metrics
  gate      the default gate: a candidate worse than the parent on the same validation
            items is rejected with both accuracies and the loss in the message
  head      a 3-label set on a 3-class folder subset: >= 95% validation accuracy, classify
            then answers only those labels
  rollback  activate an older version by hand: it serves although a newer one exists
  reject    min_accuracy 1.01: rejected, nothing published, the old version keeps serving
  cancel    a queued job cancelled at once, a full queue -> 409, a running job cancelled
            mid-epoch within one step, nothing published
  examples  labelled examples stored under the data root, limits, and a job training on them
  samehead  class folders named by the model's labels fine-tune the same head
  manage    unload (404, not ready), load, unpin, activate again
Environment: CNND_URL, CNND_ADMIN_URL, CNND_ADMIN_TOKEN_FILE (lib.sh / t_admin.sh)."""
import argparse
import json
import os
import struct
import subprocess
import sys
import time
import zlib

from adminlib import Admin, raw_admin, temp_folders, token, versions_on_disk
from itlib import (CNN, bad, check, client, cnn_predict, done, metric_sum, metrics, preds_of,
                   read, same_preds)

MODEL = "fashion"


def live():
    """(live version, labels) of MODEL from GET /v1/models."""
    c = client()
    st, _, body = c.request("GET", "/v1/models")
    c.close()
    for m in json.loads(body)["models"]:
        if m["name"] == MODEL:
            return m.get("live_version"), m.get("labels")
    return None, None


def classify(img, top_k=10):
    c = client()
    r = c.classify(MODEL, [read(img)], top_k=top_k)
    c.close()
    return r


# ---- auth --------------------------------------------------------------------------------
def step_auth(a):
    tok = token()
    check(len(tok) == 64 and all(ch in "0123456789abcdef" for ch in tok),
          "the generated token is 64 hex digits (256 bits from getrandom)")
    mode = os.stat(a.token_file).st_mode & 0o777
    check(mode == 0o600, "the token file has mode 0600 (got %o)" % mode)
    anon = Admin(tok=None)
    st, h, body = anon.request("GET", "/admin/v1/models", auth=False)
    check(st == 401 and h.get("www-authenticate", "").startswith("Bearer"),
          "no token -> 401 with WWW-Authenticate: Bearer (got %d, %r)"
          % (st, h.get("www-authenticate")))
    same = tok[:-1] + ("0" if tok[-1] != "0" else "1")
    cases = [("wrong token of the right length", same), ("a shorter token", tok[:20]),
             ("a longer token", tok + "00"), ("a one-byte token", "x")]
    bodies = set()
    for what, t in cases:
        st, h, body = Admin(tok=t).request("GET", "/admin/v1/models")
        check(st == 401 and h.get("www-authenticate", "").startswith("Bearer"),
              "%s -> 401 with WWW-Authenticate: Bearer (got %d)" % (what, st))
        bodies.add(body)
    check(len(bodies) == 1, "every wrong token gets the same answer body: %r" % bodies)
    st, _, _ = Admin(tok=tok).request("GET", "/admin/v1/models", headers={
        "Authorization": "Basic " + tok}, auth=False)
    check(st == 401, "the token under another scheme (Basic) -> 401 (got %d)" % st)
    for q in ("?access_token=" + tok, "?token=" + tok, "?x=1"):
        st, h, _ = Admin(tok=None).request("GET", "/admin/v1/models" + q, auth=False)
        st2, _, _ = Admin().request("GET", "/admin/v1/models" + q)
        check(st == 401 and st2 == 401,
              "query %s -> 401 without a header (%d) and even with the right header (%d)"
              % (q.split("=")[0] + "=...", st, st2))
    st, _, _ = Admin().request("GET", "/admin/v1/models")
    check(st == 200, "the right token in the header -> 200 (got %d)" % st)
    # decided from the headers: a 50 MB body announced with a wrong token is never read
    req = ("POST /admin/v1/models/%s/finetune HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s"
           "\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
           % (MODEL, same)).encode()
    st, first, _ = raw_admin(req, timeout=5)
    check(st == 401 and first is not None and first < 2.0,
          "a wrong token with a 50 MB body announced (none sent) -> 401 in %.3f s, before "
          "any body byte" % (first or -1))
    # timing seen from a client: the compare does not depend on how wrong the token is
    times = {n: [] for n in ("same length", "other length")}
    ca, cb = Admin(tok=same), Admin(tok=tok[:10])
    for _ in range(150):
        for name, c in (("same length", ca), ("other length", cb)):
            t0 = time.perf_counter()
            c.request("GET", "/admin/v1/models")
            times[name].append(time.perf_counter() - t0)
    med = {n: sorted(v)[len(v) // 2] * 1e6 for n, v in times.items()}
    print("auth timing: median 401 latency, wrong token of the same length %.0f us, of "
          "another length %.0f us (150 each)" % (med["same length"], med["other length"]))
    check(0.5 < med["same length"] / med["other length"] < 2.0,
          "wrong tokens of the same and of another length answer in about the same time")
    with open(a.log, "rb") as f:
        log = f.read()
    check(tok.encode() not in log and tok[:20].encode() not in log,
          "the token appears nowhere in the log")
    adm = [ln for ln in log.splitlines() if b"admin request" in ln]
    check(adm and not any(b"?" in ln or b"access_token" in ln for ln in adm),
          "admin access-log lines carry no query string (%d lines)" % len(adm))
    check(any(b"status=401" in ln and b"auth=refused" in ln for ln in adm),
          "refused requests are logged as status=401 auth=refused")


# ---- paths -------------------------------------------------------------------------------
def step_paths(a):
    adm = Admin()
    st, jl, _ = adm.json("GET", "/admin/v1/jobs")
    before = len(jl["jobs"])
    outside = os.path.abspath(a.outside)
    attempts = [
        ("absolute path", outside + "/fm"),
        ("'..' to a sibling", "../outside/fm"),
        ("'..' after a folder", "fm/../../outside/fm"),
        ("percent-encoded '..'", "%2e%2e/outside/fm"),
        ("percent-encoded '../' upper case", "%2E%2E%2Foutside%2Ffm"),
        ("symlink to a folder outside", "escape/fm"),
        ("the symlink itself", "escape"),
        ("a symlink staying inside the root (none is followed)", "fmlink"),
        ("NUL byte", "fm\u0000/../../outside/fm"),
        ("very long (5000 bytes)", "a/" * 2500),
        ("'.' component", "./fm"),
        ("class folder symlinked outside (folder format)", "symset"),
        ("absolute path to a system file", "/etc/passwd"),
    ]
    for what, path in attempts:
        fmt = "folder" if path == "symset" else "idx"
        st, j, _ = adm.submit(MODEL, {"dataset": {"format": fmt, "path": path}})
        err = (j or {}).get("error", "")
        check(st == 400 and err.startswith("dataset.path:") and
              ("symlink" in err or "symlink" not in what),
              "escape attempt (%s) -> 400 naming dataset.path: %s" % (what, err[:80]),
              "got %d %r" % (st, err))
    st, jl, _ = adm.json("GET", "/admin/v1/jobs")
    check(len(jl["jobs"]) == before,
          "no job was created by the %d attempts, so no job opened anything outside the "
          "data root" % len(attempts))
    for path in ("no/such/set", " ..", "..\\..\\..\\etc", "fm2"):
        st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": path}})
        err = (j or {}).get("error", "")
        check(st == 404 and "'%s' not found" % path in err,
              "a missing dataset %r -> 404 naming the path: %s" % (path, err[:90]),
              "got %d %r" % (st, err))
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"}},
                          content_type="text/plain")
    err = (j or {}).get("error", "")
    check(st == 415 and "application/json" in err,
          "a fine-tune body sent as text/plain -> 415: %s" % err, "got %d %r" % (st, err))
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"},
                                  "validation_split": 0})
    err = (j or {}).get("error", "")
    check(st == 400 and err.startswith("validation_split:") and "gate" in err,
          "validation_split 0 with the default parent gate -> 400: %s" % err[:90])
    for body, field in (({"dataset": {"format": "idx", "path": "fm"}, "epochs": 0}, "epochs"),
                        ({"dataset": {"format": "idx", "path": "fm"}, "learning_rate": -1},
                         "learning_rate"),
                        ({"dataset": {"format": "idx", "path": "fm"}, "freeze": "nolayer"},
                         "freeze"),
                        ({"dataset": {"format": "csv", "path": "fm"}}, "dataset.format"),
                        ({"dataset": {"format": "idx", "path": "fm"}, "epoch": 1}, "epoch")):
        st, j, _ = adm.submit(MODEL, body)
        check(st == 400 and (j or {}).get("error", "").startswith(field),
              "bad field -> 400 naming %s: %s" % (field, (j or {}).get("error")))
    st, j, _ = adm.submit("nosuchmodel", {"dataset": {"format": "idx", "path": "fm"}})
    check(st == 404, "fine-tuning an unknown model -> 404 (got %d)" % st)
    # status by meaning: a structural limit is 400 naming it, 413 only a body over 256 KiB
    for depth in (2000, 100000):
        deep = b'{"dataset":' + b"[" * depth + b"]" * depth + b"}"
        st, j, _ = adm.json("POST", "/admin/v1/models/%s/finetune" % MODEL, deep,
                            {"Content-Type": "application/json"})
        err = (j or {}).get("error", "")
        check(st == 400 and "nested deeper than 8" in err,
              "a fine-tune body nested %d deep -> 400 naming the depth limit: %s" % (depth, err),
              "got %d %r" % (st, err))
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/finetune" % MODEL, b" " * (300 << 10),
                        {"Content-Type": "application/json"})
    check(st == 413 and "error" in (j or {}),
          "a 300 KiB fine-tune body (limit 256 KiB) -> 413 with {\"error\"} (got %d)" % st)


# ---- finetune ------------------------------------------------------------------------------
def show_epochs(j):
    return "; ".join("epoch %d: train loss %.3f acc %.3f, val acc %.3f, %.0f items/s"
                     % (e["epoch"], e["train_loss"], e["train_accuracy"], e["val_accuracy"],
                        e["items_per_s"]) for e in j["history"])


def meta_of(path):
    out = subprocess.run([CNN, "info", path], capture_output=True, text=True).stdout
    return out


def step_finetune(a):
    adm = Admin()
    v0, _ = live()
    disk0 = versions_on_disk(a.repo, MODEL)
    samples0 = metrics()
    # the publishing path itself (the gate against the parent: step_gate)
    spec = {"dataset": {"format": "idx", "path": "fm"}, "epochs": 2, "batch_size": 32,
            "learning_rate": 0.01, "momentum": 0.9, "validation_split": 0.2, "seed": 3,
            "gate": "min_accuracy"}
    st, j, h = adm.submit(MODEL, spec)
    check(st == 202 and j and h.get("location") == "/admin/v1/jobs/%d" % j["id"],
          "POST .../finetune -> 202 with the job id and Location %s" % h.get("location"))
    jid = j["id"]
    final, seen, progress = adm.wait(jid)
    trans = [t["state"] for t in final["transitions"]]
    print("job %d states polled: %s; transitions recorded: %s" % (jid, " -> ".join(seen),
          " -> ".join("%s@%s" % (t["state"], t["at"][11:23]) for t in final["transitions"])))
    check(trans == ["queued", "running", "succeeded"] and seen[-1] == "succeeded",
          "job %d went queued -> running -> succeeded" % jid, "%r / %r" % (trans, seen))
    epochs_seen = sorted(set(e for e, _ in progress))
    check(epochs_seen == [1, 2] or (len(progress) > 0 and epochs_seen[-1] == 2),
          "progress was visible while running: epochs %s, %d polls with steps up to %d of %d"
          % (epochs_seen, len(progress), max([s for _, s in progress] or [0]),
             final["total_steps"]))
    print("job %d: %s" % (jid, show_epochs(final)))
    check(len(final["history"]) == 2 and all(isinstance(e["val_accuracy"], float)
                                             for e in final["history"]),
          "per-epoch train loss, train accuracy and validation accuracy reported for 2 epochs")
    va = final["val_accuracy"]
    check(isinstance(va, float) and 0 < va <= 1 and va == final["history"][-1]["val_accuracy"],
          "validation accuracy reported: %.4f on %d items" % (va or -1, final["val_items"]))
    v = final["version"]
    check(v is not None and v > max(disk0) and final["parent_version"] == v0,
          "a new version %s published from parent version %s" % (v, v0))
    f = os.path.join(a.repo, MODEL, str(v), "model.cnn")
    meta = meta_of(f)
    lines = meta.split("meta:", 1)[-1].split("\n\n", 1)[0].split()
    print("version %s metadata: %s" % (v, " ".join(ln for ln in lines if ln.split("=")[0] in (
        "parent", "dataset", "train_items", "val_items", "epochs", "lr", "momentum", "batch",
        "final_train_loss", "final_val_acc", "trained_by", "job_id"))))
    check("parent=%s/%d" % (MODEL, v0) in meta and "dataset=idx:fm" in meta and
          "final_val_acc=" in meta and "lr=0.01\n" in meta and "trained_by=cnnd" in meta,
          "lineage in the new model's metadata (parent, dataset, hyperparameters, metrics)",
          meta[-400:])
    lv, _ = live()
    check(lv == v, "the new version %s is live (GET /v1/models says %s)" % (v, lv))
    imgs = [os.path.join(a.samples, n) for n in sorted(os.listdir(a.samples))]
    ref = cnn_predict(f, imgs)
    wrong = []
    for img in imgs:
        r = classify(img)
        why = same_preds(preds_of(r["results"][0]), ref[img]) if r["version"] == v else \
            "version %s" % r["version"]
        if why:
            wrong.append("%s: %s" % (os.path.basename(img), why))
    check(not wrong, "classify answers come from version %s and equal cnn predict of its file "
          "(%d images)" % (v, len(imgs)), "; ".join(wrong[:3]))
    s1 = metrics()
    steps = (metric_sum(s1, "cnnd_train_steps_total") or 0) - \
        (metric_sum(samples0, "cnnd_train_steps_total") or 0)
    pubs = (metric_sum(s1, "cnnd_publish_total") or 0) - \
        (metric_sum(samples0, "cnnd_publish_total") or 0)
    check(steps == final["total_steps"], "cnnd_train_steps_total grew by the job's %d steps "
          "(%d)" % (final["total_steps"], steps))
    check(pubs == 1, "cnnd_publish_total grew by 1 (%d)" % pubs)
    check((metric_sum(s1, "cnnd_jobs", 'state="succeeded"') or 0) >= 1 and
          metric_sum(s1, "cnnd_train_loss") is not None and
          metric_sum(s1, "cnnd_train_accuracy") is not None,
          "cnnd_jobs{state=\"succeeded\"}, cnnd_train_loss and cnnd_train_accuracy on /metrics")


# ---- the default gate: no worse than the parent ------------------------------------------
def step_gate(a):
    """A fine-tune that makes the live model worse (a far too high learning rate and weight
    decay) is rejected by the default gate, which scored the parent on the same validation
    items; the job shows both accuracies and by how much the candidate lost."""
    adm = Admin()
    v0, _ = live()
    disk0 = versions_on_disk(a.repo, MODEL)
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"}, "epochs": 1,
                                  "batch_size": 32, "learning_rate": 0.5, "momentum": 0,
                                  "weight_decay": 0.5, "validation_split": 0.2, "seed": 3})
    final, _, _ = adm.wait(j["id"]) if st == 202 else ({"state": st}, [], [])
    pva, va, err = final.get("parent_val_accuracy"), final.get("val_accuracy"), \
        final.get("error") or ""
    print("job %s: gate %s, parent (version %s) %s, candidate %s, change %s; error: %s"
          % (j and j.get("id"), final.get("gate"), final.get("parent_version"), pva, va,
             final.get("val_accuracy_change"), err))
    check(final["state"] == "rejected" and final.get("gate") == "parent" and
          isinstance(pva, float) and isinstance(va, float) and va < pva,
          "default gate: a worse candidate (%.4f) than the parent (%.4f) on the same %s "
          "validation items -> rejected" % (va or -1, pva or -1, final.get("val_items")),
          "%s %s" % (final.get("state"), err))
    check(isinstance(pva, float) and "%.4f below the parent's %.4f (version %d" %
          (pva - va, pva, v0) in err,
          "the rejection says by how much it lost: %s" % err[:120])
    check(versions_on_disk(a.repo, MODEL) == disk0 and live()[0] == v0,
          "nothing published; version %s stays live" % v0)


# ---- head replacement ---------------------------------------------------------------------
def step_head(a):
    adm = Admin()
    labels = ["Trouser", "Bag", "Ankle boot"]
    spec = {"dataset": {"format": "folder", "path": "three"}, "labels": labels, "epochs": 3,
            "batch_size": 32, "learning_rate": 0.02, "momentum": 0.9, "validation_split": 0.2,
            "min_accuracy": 0.95, "seed": 5}
    st, j, _ = adm.submit(MODEL, spec)
    check(st == 202, "3-label fine-tune accepted (%d)" % st)
    final, seen, _ = adm.wait(j["id"])
    print("job %d: %s" % (j["id"], show_epochs(final)))
    va = final["val_accuracy"] or 0
    check(final["state"] == "succeeded" and va >= 0.95 and final["classes"] == 3,
          "new 3-class head: %s with validation accuracy %.4f >= 0.95 on %d items"
          % (final["state"], va, final["val_items"]), final.get("error") or "")
    lv, lab = live()
    check(lv == final["version"] and lab == labels,
          "version %s is live with labels %s" % (lv, lab))
    stray = []
    for name, want in (("trouser", "Trouser"), ("bag", "Bag"), ("ankle_boot", "Ankle boot"),
                       ("sneaker", None), ("dress", None), ("sandal", None)):
        r = classify(os.path.join(a.samples, name + ".png"))
        got = [p["label"] for p in r["results"][0]["predictions"]]
        if sorted(got) != sorted(labels) or (want and got[0] != want):
            stray.append("%s: %s" % (name, got))
    check(not stray, "classify with top_k=10 answers only Trouser/Bag/Ankle boot (3 "
          "predictions per image) and gets the three classes right", "; ".join(stray))


def step_rollback(a):
    adm = Admin()
    lv, _ = live()
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/versions/%d/activate" % (MODEL, a.to))
    check(st == 200 and j["live_version"] == a.to and j["pinned"],
          "POST .../versions/%d/activate rolls back from %s: %s" % (a.to, lv, j))
    v, labels = live()
    r = classify(os.path.join(a.samples, "bag.png"))
    check(v == a.to and r["version"] == a.to and len(labels) == 10,
          "version %d serves (10 labels) although version %s exists" % (a.to, lv))
    with open(os.path.join(a.repo, MODEL, "live_version")) as f:
        pin = f.read().strip()
    check(pin == str(a.to), "the pin is kept in %s/live_version (%s) for restarts" % (MODEL, pin))
    st, _, _ = adm.json("POST", "/admin/v1/models/%s/versions/999/activate" % MODEL)
    check(st == 404, "activating a version that does not exist -> 404 (%d)" % st)
    st, j, _ = adm.json("GET", "/admin/v1/models")
    m = [x for x in j["models"] if x["name"] == MODEL][0]
    check(m["pinned"] and m["live_version"] == a.to and lv in m["available"],
          "GET /admin/v1/models: live %s, pinned, available %s" % (m["live_version"],
                                                                    m["available"]))


# ---- reject -------------------------------------------------------------------------------
def step_reject(a):
    adm = Admin()
    v0, _ = live()
    img = os.path.join(a.samples, "bag.png")
    before = classify(img)
    disk0 = versions_on_disk(a.repo, MODEL)
    pubs0 = metric_sum(metrics(), "cnnd_publish_total")
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"}, "epochs": 1,
                                  "validation_split": 0.2, "min_accuracy": 1.01})
    final, _, _ = adm.wait(j["id"])
    print("job %d: %s; error: %s" % (j["id"], show_epochs(final), final["error"]))
    check(final["state"] == "rejected" and final["version"] is None and
          "min_accuracy" in (final["error"] or ""),
          "min_accuracy 1.01 -> rejected (val acc %.4f), no version" % (final["val_accuracy"]))
    after = classify(img)
    check(after["version"] == v0 and
          same_preds(preds_of(after["results"][0]), preds_of(before["results"][0])) is None,
          "the old version %s keeps serving with the same answers" % v0)
    check(versions_on_disk(a.repo, MODEL) == disk0,
          "no version folder was added (%s)" % disk0)
    check(metric_sum(metrics(), "cnnd_publish_total") == pubs0, "cnnd_publish_total unchanged")
    rej = final.get("rejected_model", "")
    check(rej and os.path.isfile(os.path.join(a.repo, rej, "model.cnn")),
          "the rejected model is kept for inspection as %s (a dot name the registry skips)"
          % rej)


# ---- cancel -------------------------------------------------------------------------------
def step_cancel(a):
    adm = Admin()
    v0, _ = live()
    disk0 = versions_on_disk(a.repo, MODEL)
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "big"}, "epochs": 2,
                                  "batch_size": 16, "validation_split": 0.1})
    big = j["id"]
    adm.wait(big, until=lambda s: s["state"] == "running" and s["total_step"] >= 3)
    st, j2, _ = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"}})
    q = adm.job(j2["id"])
    check(st == 202 and q["state"] == "queued",
          "a second job waits while one runs: %s" % q["state"])
    st, j3, h3 = adm.submit(MODEL, {"dataset": {"format": "idx", "path": "fm"}})
    check(st == 409 and "queue full" in (j3 or {}).get("error", "") and "retry-after" in h3,
          "a third job with job_queue_size=1 -> 409 queue full with Retry-After (%d)" % st)
    st, c2, _ = adm.json("DELETE", "/admin/v1/jobs/%d" % j2["id"])
    check(st == 202 and c2["state"] == "cancelled",
          "DELETE of the queued job -> cancelled at once (%s)" % c2["state"])
    st, c, _ = adm.json("DELETE", "/admin/v1/jobs/%d" % big)
    asked = c["cancel_step"]
    mid = c["epoch"] == 1 and 0 < c["step"] < c["steps_per_epoch"]
    check(st == 202 and c["cancel_requested"] and mid,
          "DELETE of the running job mid-epoch: epoch %d, step %d of %d" %
          (c["epoch"], c["step"], c["steps_per_epoch"]))
    final, _, _ = adm.wait(big)
    print("job %d: cancel asked at step %s, stopped at step %d: %s" %
          (big, asked, final["total_step"], final["error"]))
    check(final["state"] == "cancelled" and final["total_step"] - asked <= 1,
          "cancelled within one step (asked at %d, stopped at %d)" % (asked,
                                                                      final["total_step"]))
    check(final["version"] is None and versions_on_disk(a.repo, MODEL) == disk0 and
          not temp_folders(a.repo, MODEL),
          "nothing published: versions on disk %s, no temp folder" % disk0)
    check(live()[0] == v0, "version %s still live" % v0)
    st, _, _ = adm.json("DELETE", "/admin/v1/jobs/%d" % big)
    check(st == 409, "DELETE of a finished job -> 409 (%d)" % st)
    st, _, _ = adm.json("DELETE", "/admin/v1/jobs/99999")
    check(st == 404, "DELETE of an unknown job -> 404 (%d)" % st)


# ---- examples -----------------------------------------------------------------------------
def png_noise(w, h, seed):
    """An incompressible 8-bit gray PNG (for the size limit)."""
    x, raw = seed, bytearray()
    for _ in range(h):
        raw.append(0)
        for _ in range(w):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            raw.append(x >> 23)

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(raw), 0)) + chunk(b"IEND", b""))


def multipart(fields):
    b = "----cnndtest7"
    out = b""
    for name, value, ctype in fields:
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"%s\r\n%s\r\n"
                % (b, name, '; filename="x"' if ctype else "",
                   "Content-Type: %s\r\n" % ctype if ctype else "")).encode()
        out += value + b"\r\n"
    return out + ("--%s--\r\n" % b).encode(), "multipart/form-data; boundary=" + b


def upload(adm, image, label, ctype="image/png"):
    body, ct = multipart([("image", image, ctype), ("label", label.encode(), None)])
    return adm.json("POST", "/admin/v1/models/%s/examples" % MODEL, body,
                    {"Content-Type": ct})


def step_examples(a):
    adm = Admin()
    _, labels = live()
    l_bag, l_trouser = labels[8], labels[1]
    bag, trouser = read(os.path.join(a.samples, "bag.png")), \
        read(os.path.join(a.samples, "trouser.png"))
    stored = []
    for img, lab in ((bag, l_bag), (trouser, l_trouser), (bag, l_bag), (trouser, l_trouser)):
        st, j, _ = upload(adm, img, lab)
        if st == 201:
            stored.append((j["path"], img))
        else:
            bad("example upload -> %d %s" % (st, j))
    ok_files = all(os.path.isfile(os.path.join(a.data, p)) and
                   read(os.path.join(a.data, p)) == img for p, img in stored)
    check(len(stored) == 4 and ok_files and stored[0][0].startswith("examples/%s/" % MODEL),
          "4 labelled examples stored byte for byte under the data root, e.g. %s"
          % (stored[0][0] if stored else "-"))
    st, j, _ = upload(adm, bag, l_bag)
    check(st == 409 and "max_examples" in (j or {}).get("error", ""),
          "a 5th example with max_examples=4 -> 409 (%d)" % st)
    st, j, _ = upload(adm, bag, "no such label")
    check(st == 400 and (j or {}).get("error", "").startswith("label:"),
          "an unknown label -> 400 (%d)" % st)
    st, j, _ = upload(adm, b"not an image at all", l_bag)
    check(st == 400 and (j or {}).get("error", "").startswith("image:"),
          "bytes that are no image -> 400 (%d)" % st)
    big = png_noise(300, 300, 7)
    st, j, _ = upload(adm, big, l_bag)
    check(st == 413, "a %d-byte image over example_max_bytes -> 413 (%d)" % (len(big), st))
    # the stored layout is a class-folder dataset a fine-tune can use
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "folder", "path": "examples/" + MODEL},
                                  "labels": [l_trouser, l_bag], "epochs": 1, "batch_size": 2,
                                  "validation_split": 0.5, "min_accuracy": 1.01})
    final, _, _ = adm.wait(j["id"]) if st == 202 else ({"state": st}, [], [])
    check(final["state"] == "rejected" and final["train_items"] == 2 and
          final["val_items"] == 2 and final["total_step"] >= 1,
          "a job trained on the collected examples (%s, %s train / %s val items; gate 1.01 so "
          "nothing is published)" % (final["state"], final.get("train_items"),
                                     final.get("val_items")), str(final.get("error")))


def step_manage(a):
    """unload / load / unpin / activate through the admin API."""
    adm = Admin()
    v0, _ = live()
    newest = max(versions_on_disk(a.repo, MODEL))
    img = read(os.path.join(a.samples, "bag.png"))
    c = client()
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/unload" % MODEL)
    st_c, _, body = c.request("POST", "/v1/models/%s/classify" % MODEL, img,
                              {"Content-Type": "image/png"})
    st_r, _, _ = c.request("GET", "/v2/health/ready")
    _, ml, _ = adm.json("GET", "/admin/v1/models")
    state = [m["state"] for m in ml["models"] if m["name"] == MODEL]
    check(st == 200 and j["live_version"] is None and st_c == 404 and st_r == 503 and
          state == ["not loaded"],
          "POST .../unload: classify -> %d (%s), ready -> %d, listed as %s"
          % (st_c, body[:40], st_r, state))
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/load" % MODEL)
    st_c, _, body = c.request("POST", "/v1/models/%s/classify" % MODEL, img,
                              {"Content-Type": "image/png"})
    check(st == 200 and j["live_version"] == v0 and st_c == 200 and
          json.loads(body)["version"] == v0,
          "POST .../load: version %s serves again (the pin held)" % v0)
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/unpin" % MODEL)
    check(st == 200 and not j["pinned"] and j["live_version"] == newest,
          "POST .../unpin: the newest version %d is live again (%s)" % (newest, j))
    st, j, _ = adm.json("POST", "/admin/v1/models/%s/versions/%d/activate" % (MODEL, v0))
    check(st == 200 and j["live_version"] == v0 and j["pinned"],
          "POST .../versions/%s/activate pins it again" % v0)
    st, j, _ = adm.json("POST", "/admin/v1/models/nosuch/load")
    st2, _, _ = adm.json("POST", "/admin/v1/models/nosuch/unload")
    check(st == 404 and st2 == 404, "load / unload of an unknown model -> 404 (%d, %d)"
          % (st, st2))
    st, _, h = adm.json("GET", "/admin/v1/models/%s/load" % MODEL)
    check(st == 405 and "POST" in h.get("allow", ""), "GET on a POST route -> 405 with Allow")
    c.close()


def step_samehead(a):
    """A folder dataset named by the model's own labels (in folder order, not the model's)
    fine-tunes the same head: the folders are matched to the labels by name."""
    from fashion_png import png_gray8, read_idx
    from fm_subset import label_dir
    _, labels = live()
    (n, rows, cols), images = read_idx(os.path.join(a.fashion, "t10k-images-idx3-ubyte.gz"),
                                       0x803)
    (_,), lab = read_idx(os.path.join(a.fashion, "t10k-labels-idx1-ubyte.gz"), 0x801)
    root = os.path.join(a.data, "samehead")
    count = [0] * 10
    for i in range(n):
        k = lab[i]
        if count[k] >= 12:
            continue
        count[k] += 1
        d = os.path.join(root, label_dir(labels[k]))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "%05d.png" % i), "wb") as f:
            f.write(png_gray8(cols, rows, images[i * rows * cols:(i + 1) * rows * cols]))
        if sum(count) == 120:
            break
    adm = Admin()
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "folder", "path": "samehead"},
                                  "epochs": 1, "batch_size": 16, "validation_split": 0.25,
                                  "min_accuracy": 1.01})
    final, _, _ = adm.wait(j["id"]) if st == 202 else ({"state": st}, [], [])
    check(final["state"] == "rejected" and final["classes"] == 10 and
          final["train_items"] == 90 and final["val_items"] == 30,
          "class folders named by the model's labels (%s, ...) train the same 10-class head: "
          "%s, val acc %s" % (", ".join(sorted(os.listdir(root))[:3]), final["state"],
                             final.get("val_accuracy")), str(final.get("error")))
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "folder", "path": "three"}})
    final, _, _ = adm.wait(j["id"]) if st == 202 else ({"state": st}, [], [])
    check(final["state"] == "failed" and "labels" in (final.get("error") or ""),
          "3 class folders for the 10-label model without labels -> failed: %s"
          % final.get("error"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("step")
    ap.add_argument("--repo")
    ap.add_argument("--samples")
    ap.add_argument("--data")
    ap.add_argument("--outside")
    ap.add_argument("--log")
    ap.add_argument("--token-file")
    ap.add_argument("--to", type=int)
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    {"auth": step_auth, "paths": step_paths, "finetune": step_finetune, "gate": step_gate,
     "head": step_head,
     "rollback": step_rollback, "reject": step_reject, "cancel": step_cancel,
     "examples": step_examples, "samehead": step_samehead, "manage": step_manage}[a.step](a)
    done()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 -- a crash of the checker is a failure too
        bad("admin check stopped: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
