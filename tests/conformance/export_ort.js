#!/usr/bin/env node
// ONNX Runtime side of tests/conformance/export_ort.sh:
//   node export_ort.js MODEL.onnx IN.f32 EXPECT.f32 N C H W
// runs the (N, C, H, W) float32 input through MODEL.onnx with onnxruntime-node (CPU, from
// $CNND_PEERS_HOME/node_modules, which ../shared/peers/setup.sh fills) and prints one JSON
// line: the output dims, the max abs difference to EXPECT.f32 (cnnd's output for the same
// input) and the largest probability (a peaked softmax makes the comparison meaningful).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {createRequire} = require('module');

const home = path.resolve(process.env.CNND_PEERS_HOME || path.join(os.homedir(), '.cache', 'cnnd-peers'));
const ort = createRequire(path.join(home, 'package.json'))('onnxruntime-node');

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function main() {
  const [model, inFile, expFile, ...dims] = process.argv.slice(2);
  const [n, c, h, w] = dims.map(Number);
  const sess = await ort.InferenceSession.create(model, {executionProviders: ['cpu'],
    intraOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const x = readF32(inFile), want = readF32(expFile);
  if (x.length !== n * c * h * w) throw new Error(inFile + ': ' + x.length + ' floats, not N*C*H*W');
  const res = await sess.run({input: new ort.Tensor('float32', x, [n, c, h, w])});
  const y = res.output;
  let maxdiff = 0, maxprob = 0;
  if (y.data.length !== want.length) maxdiff = Infinity;
  for (let i = 0; i < want.length && i < y.data.length; i++) {
    const d = Math.abs(y.data[i] - want[i]);
    maxdiff = Number.isNaN(d) ? Infinity : Math.max(maxdiff, d);
    maxprob = Math.max(maxprob, y.data[i]);
  }
  console.log(JSON.stringify({dims: y.dims, maxdiff, maxprob, inputs: sess.inputNames, outputs: sess.outputNames}));
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
