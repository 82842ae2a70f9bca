#!/usr/bin/env python3
"""clients/cnnd_client.py's admin calls against a running cnnd (t_admin.sh):
  - the CLI `finetune MODEL --dataset D ... --follow` starts a job, prints a progress line
    per change on stderr until it ends, the final status (JSON) on stdout, exit 0 for a
    published version, and the version it names is the one /v1 serves afterwards;
  - AdminClient: finetune() of a long job, follow() until it runs, cancel() -> the job ends
    cancelled (follow() returns the final status); `job ID --follow` exits 3 for it;
  - a cancel of a finished job is CnndError 409; a wrong token is CnndError 401.
Environment: CNND_URL, CNND_ADMIN_URL, CNND_ADMIN_TOKEN_FILE."""
import io
import json
import os
import subprocess
import sys
import time

from itlib import ROOT, check, client, done
import cnnd_client

MODEL = "fashion"
CLI = [sys.executable, os.path.join(ROOT, "clients", "cnnd_client.py"),
       "--admin-url", os.environ["CNND_ADMIN_URL"],
       "--token-file", os.environ["CNND_ADMIN_TOKEN_FILE"]]


def main():
    r = subprocess.run(CLI + ["finetune", MODEL, "--dataset", "small", "--epochs", "1",
                              "--set", "batch_size=16", "--set", "gate=\"min_accuracy\"",
                              "--set", "validation_split=0.2", "--follow"],
                       capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("job ")]
    try:
        final = json.loads(r.stdout)
    except ValueError:
        final = {}
    print("cnnd_client.py finetune --follow: exit %d, %d progress lines; first: %s; last: %s"
          % (r.returncode, len(lines), lines[:1], lines[-1:]))
    check(r.returncode == 0 and final.get("state") == "succeeded",
          "CLI finetune --follow: exit 0, final state succeeded (stdout JSON)",
          "exit %d, %s; stderr %s" % (r.returncode, final.get("state"), r.stderr[-300:]))
    jid0 = final.get("id")
    check(lines and all(ln.startswith("job %s %s " % (jid0, MODEL)) for ln in lines) and
          "version %s published" % final.get("version") in lines[-1] and
          "parent version" in lines[-1],
          "progress lines until the end, the last one names the published version and both "
          "validation accuracies: %s" % lines[-1:])
    c = client()
    v = c.classify(MODEL, [open(os.path.join(ROOT, "models/samples/bag.png"), "rb").read()])
    check(v.get("version") == final.get("version"),
          "the version the client reported (%s) is the one /v1 serves (%s)"
          % (final.get("version"), v.get("version")))

    adm = cnnd_client.AdminClient(os.environ["CNND_ADMIN_URL"],
                                  token_file=os.environ["CNND_ADMIN_TOKEN_FILE"])
    j = adm.finetune(MODEL, {"dataset": {"format": "idx", "path": "big"}, "epochs": 3,
                             "batch_size": 16})
    jid = j["id"]
    check(j.get("state") == "queued" and j.get("location") == "/admin/v1/jobs/%d" % jid,
          "AdminClient.finetune -> queued job %d" % jid)
    while True:
        s = adm.job(jid)
        if s["state"] != "queued" and (s["state"] != "running" or s["total_step"] >= 2):
            break
        time.sleep(0.05)
    c2 = adm.cancel(jid)
    buf = io.StringIO()
    end = adm.follow(jid, poll_s=0.1, out=buf, timeout_s=120)
    check(c2.get("cancel_requested") and end["state"] == "cancelled" and end["version"] is None,
          "AdminClient.cancel of the running job -> it ends cancelled (%s: %s)"
          % (end["state"], end.get("error")))
    check("cancelled" in buf.getvalue().splitlines()[-1],
          "follow() printed the end: %s" % buf.getvalue().splitlines()[-1])
    r = subprocess.run(CLI + ["job", str(jid), "--follow"], capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 3 and json.loads(r.stdout).get("state") == "cancelled",
          "CLI job ID --follow of a cancelled job exits 3 (%d)" % r.returncode)
    try:
        adm.cancel(jid)
        check(False, "cancel of a finished job -> CnndError 409")
    except cnnd_client.CnndError as e:
        check(e.status == 409, "cancel of a finished job -> CnndError 409: %s" % e.message)
    try:
        cnnd_client.AdminClient(os.environ["CNND_ADMIN_URL"], token="x" * 32).jobs()
        check(False, "a wrong token -> CnndError 401")
    except cnnd_client.CnndError as e:
        check(e.status == 401, "a wrong token -> CnndError 401 (%d)" % e.status)
    done()


if __name__ == "__main__":
    main()
