#!/usr/bin/env node
// ONNX Runtime's per-node profile of one .onnx for bench/layer_profile.sh:
//
//   node bench/ort_profile.js MODEL.onnx BATCH THREADS [RUNS] [WARMUP] > nodes.jsonl
//
// Runs the CPU EP with the peers' settings (graph optimisation all, intraOpNumThreads =
// THREADS, sequential) and enableProfiling on a fixed input, then reads the JSON trace it
// writes (profileFilePrefix in a temp dir): every "Node" event "<name>_kernel_time" has its
// dur in microseconds.  Prints one line per node, {"node","op","ms","min_ms"}: the median and
// minimum over the RUNS timed runs (warm-up runs are dropped), and a last {"total_ms"}: the
// median run's wall time.  onnxruntime-node from $CNND_PEERS_HOME (as tests/conformance/ort_run.js).
// The input is BATCH x 3 x HW x HW, HW from $ORT_PROFILE_HW (default 224; 32 for the CIFAR net).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {createRequire} = require('module');

const home = path.resolve(process.env.CNND_PEERS_HOME || path.join(os.homedir(), '.cache', 'cnnd-peers'));
const ort = createRequire(path.join(home, 'package.json'))('onnxruntime-node');

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const [model, b, t, r, w] = process.argv.slice(2);
  if (!t) throw new Error('usage: ort_profile.js MODEL.onnx BATCH THREADS [RUNS] [WARMUP]');
  const batch = Number(b), threads = Number(t), runs = Number(r || 10), warmup = Number(w || 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-prof-'));
  const s = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: threads, interOpNumThreads: 1, enableCpuMemArena: true,
    enableMemPattern: true, enableProfiling: true, profileFilePrefix: path.join(dir, 'ort'),
  });
  const name = s.inputNames[0];
  const hw = Number(process.env.ORT_PROFILE_HW || 224);
  const data = new Float32Array(batch * 3 * hw * hw);
  let x = 12345;
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    data[i] = (x >>> 8) * (2 / 16777216) - 1;
  }
  const feeds = {[name]: new ort.Tensor('float32', data, [batch, 3, hw, hw])};
  const wall = [];
  for (let i = 0; i < warmup + runs; i++) {
    const t0 = process.hrtime.bigint();
    await s.run(feeds);
    if (i >= warmup) wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.endProfiling();
  if (s.release) await s.release();
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  if (files.length !== 1) throw new Error('no profile written in ' + dir);
  const trace = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
  fs.rmSync(dir, {recursive: true});
  // per node: its durations in run order; runs are the model_run events
  const per = new Map(), op = new Map();
  for (const e of trace) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const n = e.name.slice(0, -'_kernel_time'.length);
    if (!per.has(n)) per.set(n, []), op.set(n, (e.args && e.args.op_name) || '');
    per.get(n).push(e.dur / 1e3);
  }
  for (const [n, d] of per) {
    const timed = d.slice(d.length - runs); // one per run; the warm-up ones come first
    console.log(JSON.stringify({node: n, op: op.get(n), ms: +median(timed).toFixed(4),
      min_ms: +Math.min(...timed).toFixed(4)}));
  }
  console.log(JSON.stringify({total_ms: +median(wall).toFixed(4)}));
}

main().catch((e) => { console.error('ort_profile.js: ' + e.message); process.exit(1); });
