#!/usr/bin/env python3
"""The dashboard's routes on a running cnnd (the page itself is tested in a browser by make
test-browser): GET / and /ui/{file} with their content types, 404 for an unknown file,
GET /v1/stats counting exactly the requests this script makes, its
bad query -> 400; on the admin port the page needs no token but the API still does, and
GET /admin/v1/jobs/{id}/curve answers 404 with a JSON error for an unknown job."""
import json
import sys
import time
import urllib.error
import urllib.request

from itlib import URL, check, done, is_error_json

ADMIN, TOKEN = sys.argv[1], open(sys.argv[2]).read().strip()


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


st, hd, body = get(URL + "/")
check(st == 200 and hd.get("Content-Type", "").startswith("text/html") and b"ui/app.js" in body,
      "GET / -> the dashboard page (text/html, loads ui/app.js)", str(st))
for f, t in (("app.js", "text/javascript"), ("style.css", "text/css")):
    st, hd, body = get(URL + "/ui/" + f)
    check(st == 200 and hd.get("Content-Type", "").startswith(t) and len(body) > 100,
          "GET /ui/%s -> %s" % (f, t), "%s %s" % (st, hd.get("Content-Type")))
st, _, body = get(URL + "/ui/secret.txt")
check(st == 404 and is_error_json(body), "GET /ui/<unknown> -> 404 JSON", str(st))
st, _, body = get(URL + "/ui/../metrics")
check(st in (400, 404), "GET /ui/../metrics is not a way out -> %d" % st)

# The whole window before and after 4 requests: exactly those 4 and the first stats request
# (counted when it completed) were added.
def window_requests():
    st, _, body = get(URL + "/v1/stats?seconds=600")
    return json.loads(body) if st == 200 else {}


before = window_requests()
for _ in range(4):
    get(URL + "/v2/health/live")
s = window_requests()
n0, n1 = before.get("window", {}).get("requests", -1), s.get("window", {}).get("requests", -2)
check(n1 - n0 == 5 and sum(p["requests"] for p in s["series"]) == n1 and len(s["series"]) == 600,
      "GET /v1/stats counts every request: +5 after 4 requests and one stats call (%d -> %d)" %
      (n0, n1), str(s)[:200])
check(s.get("window", {}).get("p99_ms") is not None and isinstance(s["window"].get("batch_hist"), list),
      "GET /v1/stats: latency percentiles and the batch histogram", str(s.get("window"))[:200])
for q in ("0", "601", "x"):
    st, _, body = get(URL + "/v1/stats?seconds=" + q)
    check(st == 400 and is_error_json(body), "GET /v1/stats?seconds=%s -> 400" % q, str(st))

st, hd, body = get(ADMIN + "/admin/ui")
check(st == 200 and hd.get("Content-Type", "").startswith("text/html"),
      "admin GET /admin/ui without a token -> the page", str(st))
st, _, _ = get(ADMIN + "/admin/ui/app.js")
check(st == 200, "admin GET /admin/ui/app.js without a token -> 200", str(st))
st, _, _ = get(ADMIN + "/admin/v1/jobs")
check(st == 401, "admin API still needs the token (GET /admin/v1/jobs -> 401)", str(st))
st, _, _ = get(ADMIN + "/admin/ui?token=x")
check(st == 401, "admin page with a query string -> 401 (no credentials in URLs)", str(st))
st, _, body = get(ADMIN + "/admin/v1/jobs/99/curve", {"Authorization": "Bearer " + TOKEN})
check(st == 404 and is_error_json(body), "GET /admin/v1/jobs/99/curve -> 404 JSON", str(st))
done()
