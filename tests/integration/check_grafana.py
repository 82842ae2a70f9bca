#!/usr/bin/env python3
"""config/grafana/cnnd.json against a running cnnd's /metrics: every metric a panel queries is
a family the daemon exports (histogram series only through _bucket/_sum/_count), every label
a query selects, groups by or puts in a legend is one those series carry, every exported
family is on some panel, and the file is a dashboard Grafana imports (panels with targets on
the ${DS_PROMETHEUS} input)."""
import json
import re
import sys
import urllib.request

from itlib import URL, check, done

dash = json.load(open(sys.argv[1]))
with urllib.request.urlopen(URL + "/metrics", timeout=30) as r:
    text = r.read().decode()
types, labels = {}, {}
for line in text.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        types[m.group(1)] = m.group(2)
        continue
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ", line)
    if m and not line.startswith("#"):
        names = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        labels.setdefault(m.group(1), set()).update(names)

PROM_ADDED = {"instance", "job"}  # the scraper adds these
exprs = []
for p in dash.get("panels", []):
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"], t.get("legendFormat", ""), t.get("datasource", {})))
check(dash.get("__inputs", [{}])[0].get("name") == "DS_PROMETHEUS" and len(exprs) >= 15 and
      all(ds.get("uid") == "${DS_PROMETHEUS}" for _, _, _, ds in exprs),
      "grafana: %d queries, all on the ${DS_PROMETHEUS} input" % len(exprs))

used = set()
for title, expr, legend, _ in exprs:
    series = set(re.findall(r"\b(cnnd_[a-z_]+)", expr))
    for s in series:
        base = re.sub(r"_(bucket|sum|count)$", "", s)
        if base != s and types.get(base) == "histogram":
            fam, ok = base, True
        else:
            fam, ok = s, s in types and types[s] != "histogram"
        check(ok, "grafana %r: %s is exported by cnnd%s" % (title, s, " (%s)" % types.get(fam, "missing")))
        used.add(fam)
        have = labels.get(s, set()) | PROM_ADDED
        sel = re.findall(re.escape(s) + r"\{([^}]*)\}", expr)
        names = set()
        for body in sel:
            names |= set(re.findall(r"([a-z_]+)\s*=~?", body))
        for g in re.findall(r"by \(([^)]*)\)", expr):
            names |= {x.strip() for x in g.split(",")}
        names |= set(re.findall(r"\{\{(\w+)\}\}", legend)) if len(series) == 1 else set()
        missing = names - have
        check(not missing, "grafana %r: labels %s exist on %s" % (title, sorted(names), s),
              "missing %s (have %s)" % (sorted(missing), sorted(have)))
unused = set(types) - used
check(not unused, "grafana: every family cnnd exports is on a panel (%d families)" % len(types),
      "not shown: %s" % sorted(unused))
done()
