#!/usr/bin/env python3
"""One kill -9 round:  check_admin_kill.py ROUND SPEC_JSON

Submits a fine-tune job and kills cnnd ($CNND_PID) with SIGKILL at a moment picked by the
round number (seeded): round % 3 == 0 at a random fraction of the training steps, == 1
0..40 ms after the job reached its export/publish phase, == 2 at a random time 0..2.5 s
after the submit.  Prints where the job was when the signal went out (from its last
status, polled every ~1 ms).  The restart and the checks are t_admin.sh's."""
import json
import os
import random
import signal
import sys
import time

from adminlib import Admin
from itlib import PID, bad


def main():
    rnd_round = int(sys.argv[1])
    spec = json.loads(sys.argv[2])
    rnd = random.Random(rnd_round * 7919 + int(os.environ.get("ADMIN_KILL_SEED", "1")))
    mode = ("progress", "publish", "time")[rnd_round % 3]
    adm = Admin(timeout=10)
    st, j, _ = adm.submit("fashion", spec)
    if st != 202:
        bad("round %d: submit answered %d %s" % (rnd_round, st, j))
        sys.exit(1)
    jid, t0 = j["id"], time.monotonic()
    frac, wait_s, extra = rnd.random(), rnd.uniform(0, 2.5), rnd.uniform(0, 0.04)
    last = {"state": "queued", "phase": "queued", "total_step": 0, "total_steps": 0}
    while True:
        if mode == "time" and time.monotonic() - t0 >= wait_s:
            break
        try:
            last = adm.job(jid)
        except (OSError, RuntimeError):
            break
        if last["state"] not in ("queued", "running"):
            break
        if mode == "progress" and last["total_steps"] and \
                last["total_step"] >= frac * last["total_steps"]:
            break
        if mode == "publish" and last["phase"] in ("exporting", "publishing"):
            time.sleep(extra)
            break
        time.sleep(0.001)
    os.kill(PID, signal.SIGKILL)
    print("round %d (%s): SIGKILL %.0f ms after the submit; last status: %s, phase %s, step "
          "%d of %d" % (rnd_round, mode, (time.monotonic() - t0) * 1000, last["state"],
                        last["phase"], last["total_step"], last["total_steps"]))


if __name__ == "__main__":
    main()
