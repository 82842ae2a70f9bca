#!/usr/bin/env python3
"""The deployment files, parsed:  check_k8s.py static ROOT | probes ROOT | env ROOT

static: config/k8s/*.yaml (Deployment, Service, volumes, Secret), config/compose.yaml and
        config/nginx.conf checked against each other and against cnnd's options: probe
        ports name real container ports, the container ports are the configured CNND_PORT /
        CNND_ADMIN_PORT, terminationGracePeriodSeconds >= preStop + drain_timeout_ms, a
        read-only root with every path cnnd writes on a volume, non-root, resources, the
        token file inside the Secret's mount (defaultMode 0440 + fsGroup), the Service's
        target port and selector; compose's services are nginx's upstreams.
probes: prints "KIND PATH PORT" per probe (named ports resolved to numbers).
env:    prints the container's CNND_* variables as NAME=VALUE lines.
Needs the yaml module (Debian: python3-yaml)."""
import glob
import os
import re
import sys

import yaml

from itlib import bad, check, done

OPTIONS_WRITTEN = ("CNND_MODEL_REPOSITORY", "CNND_DATA_ROOT")


def load(root):
    docs = []
    for p in sorted(glob.glob(os.path.join(root, "config", "k8s", "*.yaml"))):
        with open(p) as f:
            docs += [(os.path.basename(p), d) for d in yaml.safe_load_all(f) if d]
    return docs


def the(docs, kind):
    ds = [d for _, d in docs if d.get("kind") == kind]
    if len(ds) != 1:
        raise SystemExit("FAIL k8s: expected one %s, found %d" % (kind, len(ds)))
    return ds[0]


def container(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def env_of(c):
    return {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}


def probes(c):
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    out = []
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        g = c[kind]["httpGet"]
        port = g["port"]
        out.append((kind, g["path"], ports.get(port, port)))
    return out


def static(root):
    docs = load(root)
    kinds = sorted(d["kind"] for _, d in docs)
    print("config/k8s: %s" % ", ".join(kinds))
    dep, svc, sec = the(docs, "Deployment"), the(docs, "Service"), the(docs, "Secret")
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    env = env_of(c)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("http") == int(env.get("CNND_PORT", 8080)),
          "container port 'http' %s is CNND_PORT %s" % (ports.get("http"), env.get("CNND_PORT")))
    check(ports.get("admin") == int(env.get("CNND_ADMIN_PORT", 8081)),
          "container port 'admin' %s is CNND_ADMIN_PORT %s"
          % (ports.get("admin"), env.get("CNND_ADMIN_PORT")))
    for kind, path, port in probes(c):
        check(isinstance(port, int) and port == ports["http"] and path.startswith("/v2/health/"),
              "%s GET %s on port %s (the inference port)" % (kind, path, port))
    check(probes(c)[2][1] == "/v2/health/ready" and probes(c)[1][1] == "/v2/health/live",
          "readiness is /v2/health/ready (503 while draining), liveness /v2/health/live")
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    pre_s = int(pre[1]) if pre[0] == "sleep" else 0
    drain_s = int(env.get("CNND_DRAIN_TIMEOUT_MS", 30000)) / 1000.0
    grace = pod["terminationGracePeriodSeconds"]
    check(grace >= pre_s + drain_s + 5,
          "terminationGracePeriodSeconds %d >= preStop %d s + drain_timeout_ms %.0f s + 5 s"
          % (grace, pre_s, drain_s))
    sc, psc = c["securityContext"], pod["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation")
          is False, "readOnlyRootFilesystem, no privilege escalation")
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
          "runAsNonRoot, runAsUser %s" % psc.get("runAsUser"))
    res = c["resources"]
    check(all(k in res.get(w, {}) for w in ("requests", "limits") for k in ("cpu", "memory")),
          "cpu and memory requests and limits: %s" % res)
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    check(all(m in vols for m in mounts.values()), "every volumeMount names a volume")
    for var in OPTIONS_WRITTEN:
        path = env.get(var, "")
        check(mounts.get(path) in vols, "%s=%s is a volume (the root is read-only)"
              % (var, path), "mounts: %s" % mounts)
    check("/tmp" in mounts, "/tmp is a volume")
    repo = vols[mounts[env["CNND_MODEL_REPOSITORY"]]]
    check("persistentVolumeClaim" in repo, "the repository is a PersistentVolumeClaim")
    claims = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "PersistentVolumeClaim"}
    for v in vols.values():
        if "persistentVolumeClaim" in v:
            name = v["persistentVolumeClaim"]["claimName"]
            check(name in claims, "claim %s is defined" % name)
    check("ReadWriteMany" in claims[repo["persistentVolumeClaim"]["claimName"]]["spec"]
          ["accessModes"], "the repository claim is ReadWriteMany (shared by the replicas)")
    tok = env.get("CNND_ADMIN_TOKEN_FILE", "")
    smount = [p for p, n in mounts.items() if "secret" in vols[n] and tok.startswith(p + "/")]
    check(len(smount) == 1, "CNND_ADMIN_TOKEN_FILE %s is inside a Secret volume mount" % tok)
    if smount:
        sv = vols[mounts[smount[0]]]["secret"]
        check(sv["secretName"] == sec["metadata"]["name"] and sv.get("defaultMode") == 0o440
              and psc.get("fsGroup") == psc.get("runAsGroup"),
              "the Secret %s is mounted with defaultMode 0440, group fsGroup %s"
              % (sv["secretName"], psc.get("fsGroup")))
        keys = [i["path"] for i in sv.get("items", [])]
        check(os.path.basename(tok) in keys, "the token file is an item of the Secret")
    tp = [p for p in svc["spec"]["ports"]]
    check(len(tp) == 1 and tp[0]["targetPort"] == "http",
          "the Service exposes only the inference port ('http'), not admin")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "the Service selector matches the pod labels")
    img = [ic for ic in pod.get("initContainers", [])]
    check(img and img[0]["image"] == c["image"], "an init container seeds an empty repository")
    compose(root)


def compose(root):
    with open(os.path.join(root, "config", "compose.yaml")) as f:
        cp = yaml.safe_load(f)
    with open(os.path.join(root, "config", "nginx.conf")) as f:
        ngx = f.read()
    ups = re.findall(r"^\s*server\s+([A-Za-z0-9_.-]+):(\d+)", ngx, re.M)
    svcs = cp["services"]
    check(len(ups) >= 2 and all(h in svcs for h, _ in ups),
          "nginx.conf's upstreams %s are compose services" % ["%s:%s" % u for u in ups])
    check(all(p == "8080" and "CNND_PORT" not in svcs[h].get("environment", {})
              for h, p in ups), "each upstream is a replica's inference port 8080")
    vols = [set(v.split(":")[0] + ":" + v.split(":")[1] for v in svcs[h]["volumes"])
            for h, _ in ups]
    check(all(v == vols[0] for v in vols) and any(x.endswith(":/var/lib/cnnd/models")
                                                  for x in vols[0]),
          "the replicas share one models volume at /var/lib/cnnd/models")
    listen = re.search(r"^\s*listen\s+(\d+);", ngx, re.M).group(1)
    check(any(p.split(":")[-1] == listen for p in svcs["nginx"]["ports"]),
          "compose publishes nginx's listen port %s" % listen)
    check(all(svcs[h].get("environment", {}).get("CNND_POLL_INTERVAL_S", "0") != "0"
              for h, _ in ups), "every replica polls the shared repository")


def main():
    cmd, root = sys.argv[1], sys.argv[2]
    if cmd == "static":
        static(root)
        done()
    c = container(the(load(root), "Deployment"))
    if cmd == "probes":
        for kind, path, port in probes(c):
            print(kind, path, port)
    elif cmd == "env":
        for k, v in env_of(c).items():
            if k.startswith("CNND_"):
                print("%s=%s" % (k, v))


if __name__ == "__main__":
    try:
        main()
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        bad("deployment files: missing or malformed field: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
