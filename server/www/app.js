// cnnd dashboard: no library, no build step, no external network.  Served by cnnd itself
// (server/handlers_dashboard.c).  On the inference port (/) it is read-only: models, this
// port's traffic (GET /v1/stats), and a drop zone that explains an image (POST .../explain).
// On the admin port (/admin/ui) it asks for the admin token, lists the models with their
// live / pinned versions, starts and cancels fine-tune jobs, and draws a job's curves
// (GET /admin/v1/jobs/{id}/curve) and, once it has one, its confusion matrix.
"use strict";

const ADMIN = location.pathname.startsWith("/admin");
const $ = (id) => document.getElementById(id);
const BLUE = "#1f77b4", ORANGE = "#ff7f0e";
let token = sessionStorage.getItem("cnnd-admin-token") || "";
let selectedJob = null;

document.body.classList.add(ADMIN ? "admin" : "inference");
$("mode").textContent = ADMIN ? "admin port: jobs and models" : "inference port (read-only)";

async function api(path, opts) {
  opts = opts || {};
  opts.headers = opts.headers || {};
  if (ADMIN) opts.headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, opts);
  const type = r.headers.get("Content-Type") || "";
  const body = type.startsWith("application/json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

function fmt(v, digits) {
  return v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(digits);
}

// ---- charts: axes, a line per series, bars ------------------------------------------------

function frame(ctx, w, h, ymax) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#eee";
  ctx.fillStyle = "#777";
  ctx.font = "10px sans-serif";
  for (let k = 0; k <= 4; k++) {
    const y = 10 + (h - 30) * (1 - k / 4);
    ctx.beginPath(); ctx.moveTo(40, y); ctx.lineTo(w - 5, y); ctx.stroke();
    ctx.fillText(fmt(ymax * k / 4, ymax < 10 ? 2 : 0), 2, y + 3);
  }
}

function lineChart(canvas, series, ymaxMin) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  let ymax = ymaxMin || 1, n = 0;
  for (const s of series) {
    n = Math.max(n, s.y.length);
    for (const v of s.y) if (v !== null && v > ymax) ymax = v;
  }
  ymax *= 1.1;
  frame(ctx, w, h, ymax);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    s.y.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      const x = 40 + (w - 45) * (n > 1 ? i / (n - 1) : 0), y = 10 + (h - 30) * (1 - v / ymax);
      if (s.dots) { ctx.fillRect(x - 2, y - 2, 5, 5); return; }
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }
}

function barChart(canvas, labels, values) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  const ymax = Math.max(1, ...values) * 1.1, bw = (w - 45) / values.length;
  frame(ctx, w, h, ymax);
  values.forEach((v, i) => {
    const bh = (h - 30) * v / ymax, x = 40 + i * bw;
    ctx.fillStyle = BLUE;
    ctx.fillRect(x + 2, 10 + (h - 30) - bh, bw - 4, bh);
    ctx.fillStyle = "#555";
    ctx.fillText(labels[i], x + 2, h - 6);
  });
}

// ---- models -------------------------------------------------------------------------------

async function loadModels() {
  const body = await api(ADMIN ? "/admin/v1/models" : "/v1/models");
  const tbody = $("models").tBodies[0];
  tbody.textContent = "";
  const names = [];
  for (const m of body.models) {
    names.push(m.name);
    const tr = document.createElement("tr");
    cell(tr, m.name);
    if (ADMIN) {
      cell(tr, (m.loaded || []).map((v) => v.version + (v.live ? " (live)" : "")).join(", ") +
               (m.available && m.available.length ? "; on disk: " + m.available.join(", ") : ""));
      cell(tr, (m.live_version === null ? "-" : m.live_version) + (m.pinned ? " (pinned)" : ""));
      cell(tr, ""); cell(tr, (m.loaded && m.loaded[0]) ? m.loaded[0].classes : "-");
    } else {
      cell(tr, (m.versions || []).map((v) => v.version + " " + v.state).join(", "));
      cell(tr, m.live_version);
      cell(tr, m.input ? m.input.shape.join("x") : "");
      cell(tr, m.num_classes);
    }
    tbody.appendChild(tr);
  }
  for (const id of ADMIN ? ["job-model"] : ["explain-model"]) {
    const sel = $(id), keep = sel.value;
    sel.textContent = "";
    for (const n of names) sel.add(new Option(n, n));
    if (names.includes(keep)) sel.value = keep;
  }
}

// ---- traffic (inference port) ---------------------------------------------------------------

async function loadStats() {
  const s = await api("/v1/stats?seconds=300");
  const w = s.window;
  $("traffic-summary").textContent =
    `${w.requests} requests (${fmt(w.rps, 2)}/s), latency p50 ${fmt(w.p50_ms, 2)} ms, ` +
    `p90 ${fmt(w.p90_ms, 2)} ms, p99 ${fmt(w.p99_ms, 2)} ms, ${w.batches} batches, ` +
    `${s.explanations_in_flight || 0} explanations in flight`;
  lineChart($("chart-rps"), [{ y: s.series.map((p) => p.requests), color: BLUE }], 1);
  lineChart($("chart-latency"), [{ y: s.series.map((p) => p.p50_ms), color: BLUE },
                                  { y: s.series.map((p) => p.p99_ms), color: ORANGE }], 1);
  const hist = w.batch_hist.filter((b, i) => i < 8 || b.count > 0);
  barChart($("chart-batch"), hist.map((b) => "<=" + b.le), hist.map((b) => b.count));
}

// ---- explain (inference port) ---------------------------------------------------------------

async function explain(file) {
  $("explain-error").hidden = true;
  const model = $("explain-model").value, method = $("explain-method").value;
  try {
    const ctype = file.type === "image/jpeg" ? "image/jpeg" : "image/png";
    const body = await api(`/v1/models/${encodeURIComponent(model)}/explain?method=${method}&top_k=3`,
                           { method: "POST", headers: { "Content-Type": ctype }, body: file });
    $("explain-input").src = URL.createObjectURL(file);
    $("heatmap").src = "data:image/png;base64," + body.heatmap.base64;
    $("explain-label").textContent = body.label;
    const ol = $("explain-top");
    ol.textContent = "";
    for (const p of body.predictions) {
      const li = document.createElement("li");
      li.textContent = `${p.label} ${fmt(p.score, 4)}`;
      ol.appendChild(li);
    }
    $("explain-result").hidden = false;
  } catch (e) {
    $("explain-error").textContent = "explain failed: " + e.message;
    $("explain-error").hidden = false;
  }
}

function setupDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) explain(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) explain(e.target.files[0]); });
}

// ---- jobs (admin port) ----------------------------------------------------------------------

function jobError(e) {
  $("jobs-error").textContent = e ? String(e.message || e) : "";
  $("jobs-error").hidden = !e;
}

async function loadJobs() {
  const body = await api("/admin/v1/jobs");
  const tbody = $("jobs").tBodies[0];
  tbody.textContent = "";
  for (const j of body.jobs) {
    const tr = document.createElement("tr");
    tr.id = "job-" + j.id;
    cell(tr, j.id); cell(tr, j.model); cell(tr, j.state + (j.phase ? " (" + j.phase + ")" : ""));
    cell(tr, `${j.epoch}/${j.epochs}`); cell(tr, `${j.total_step}/${j.total_steps}`);
    cell(tr, fmt(j.loss, 4)); cell(tr, fmt(j.accuracy, 3)); cell(tr, fmt(j.val_accuracy, 3));
    const td = cell(tr, "");
    const show = document.createElement("button");
    show.textContent = "curves";
    show.onclick = () => { selectedJob = j.id; loadCurve().catch(jobError); };
    td.appendChild(show);
    if (j.state === "queued" || j.state === "running") {
      const cancel = document.createElement("button");
      cancel.textContent = "cancel";
      cancel.onclick = () => api("/admin/v1/jobs/" + j.id, { method: "DELETE" }).then(loadJobs, jobError);
      td.appendChild(cancel);
    }
    tbody.appendChild(tr);
  }
  if (selectedJob === null && body.jobs.length) selectedJob = body.jobs[0].id;
}

// Loss and accuracy panels of one canvas, x = step; validation dots at each epoch's end.
function drawCurve(c) {
  const canvas = $("job-curve"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const xmax = Math.max(c.total_steps || 1, ...c.steps, 1);
  const lmax = Math.max(0.1, ...c.loss.filter((v) => v !== null),
                        ...c.history.map((e) => e.val_loss || 0)) * 1.1;
  const panels = [{ y0: 10, key: "loss", max: lmax, val: "val_loss" },
                  { y0: h / 2 + 5, key: "accuracy", max: 1, val: "val_accuracy" }];
  const spe = c.epochs ? xmax / c.epochs : xmax;
  for (const p of panels) {
    const ph = h / 2 - 25, X = (s) => 45 + (w - 55) * s / xmax, Y = (v) => p.y0 + ph * (1 - v / p.max);
    ctx.strokeStyle = "#ddd"; ctx.strokeRect(45, p.y0, w - 55, ph);
    ctx.fillStyle = "#666"; ctx.font = "10px sans-serif";
    ctx.fillText(p.key, 2, p.y0 + 10); ctx.fillText(fmt(p.max, 2), 2, p.y0 + 22); ctx.fillText("0", 2, p.y0 + ph);
    ctx.strokeStyle = BLUE; ctx.lineWidth = 1; ctx.beginPath();
    let ema = null;
    c.steps.forEach((s, i) => {
      const v = c[p.key][i];
      if (v === null) return;
      ema = ema === null ? v : 0.9 * ema + 0.1 * v;
      if (i === 0) ctx.moveTo(X(s), Y(ema)); else ctx.lineTo(X(s), Y(ema));
    });
    ctx.stroke();
    ctx.fillStyle = ORANGE;
    for (const e of c.history) {
      const v = e[p.val];
      if (v !== null && v !== undefined) ctx.fillRect(X(e.epoch * spe) - 3, Y(Math.min(v, p.max)) - 3, 7, 7);
    }
  }
  ctx.fillStyle = "#666";
  ctx.fillText(`step (${c.steps.length} points, every ${c.every})`, w / 2 - 40, h - 2);
  canvas.dataset.points = String(c.steps.length);
}

function drawConfusion(m, labels) {
  const t = $("confusion");
  t.textContent = "";
  const head = t.insertRow();
  head.appendChild(document.createElement("th"));
  m.forEach((_, j) => { const th = document.createElement("th"); th.textContent = j; head.appendChild(th); });
  m.forEach((row, i) => {
    const tr = t.insertRow(), total = row.reduce((a, b) => a + b, 0) || 1;
    const th = document.createElement("th");
    th.textContent = i + (labels && labels[i] ? " " + labels[i] : "");
    tr.appendChild(th);
    row.forEach((v) => {
      const td = tr.insertCell();
      td.textContent = v;
      const f = v / total;
      td.style.background = `rgba(31,119,180,${f.toFixed(3)})`;
      td.style.color = f > 0.5 ? "#fff" : "#222";
    });
  });
  $("confusion-box").hidden = false;
}

async function loadCurve() {
  if (selectedJob === null) return;
  const c = await api(`/admin/v1/jobs/${selectedJob}/curve`);
  $("job-detail").hidden = false;
  $("job-title").textContent = `job ${c.id}: ${c.state}`;
  drawCurve(c);
  if (c.confusion) drawConfusion(c.confusion); else $("confusion-box").hidden = true;
}

function setupAdmin() {
  $("token").value = token;
  $("token-form").onsubmit = (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("cnnd-admin-token", token);
    refresh();
  };
  $("job-form").onsubmit = (e) => {
    e.preventDefault();
    // An empty field is left out, so the server's default applies (undefined is not sent).
    const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
    const body = {
      dataset: { format: $("job-format").value, path: $("job-path").value },
      epochs: num("job-epochs"), batch_size: num("job-batch"), learning_rate: num("job-lr"),
    };
    api(`/admin/v1/models/${encodeURIComponent($("job-model").value)}/finetune`,
        { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then((r) => { selectedJob = r.id; jobError(null); return loadJobs(); }, jobError);
  };
}

// ---- refresh loop ---------------------------------------------------------------------------

async function refresh() {
  try {
    if (ADMIN && !token) { $("status").textContent = "enter the admin token"; return; }
    await loadModels();
    if (ADMIN) { await loadJobs(); await loadCurve(); } else { await loadStats(); }
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("status").textContent = "update failed: " + e.message;
  }
}

if (ADMIN) setupAdmin(); else setupDrop();
refresh();
setInterval(refresh, ADMIN ? 1000 : 2000);
