#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU) reference run for tests/conformance/torchvision.sh:
//
//   node ort_run.js MODEL.onnx IN.f32 N,C,H,W OUT.f32
//
// Runs the model's one input on the raw little-endian float32 tensor IN.f32 of the given
// shape and writes its first output as raw float32 to OUT.f32; prints the output's shape.
// onnxruntime-node comes from $CNND_PEERS_HOME/node_modules (default
// $HOME/.cache/cnnd-peers, filled by ../shared/peers/setup.sh).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {createRequire} = require('module');

const home = path.resolve(process.env.CNND_PEERS_HOME || path.join(os.homedir(), '.cache', 'cnnd-peers'));
const ort = createRequire(path.join(home, 'package.json'))('onnxruntime-node');

async function main() {
  const [model, inFile, shapeArg, outFile] = process.argv.slice(2);
  if (!outFile) throw new Error('usage: ort_run.js MODEL.onnx IN.f32 N,C,H,W OUT.f32');
  const shape = shapeArg.split(',').map(Number);
  const b = fs.readFileSync(inFile);
  const data = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  if (data.length !== shape.reduce((a, x) => a * x, 1))
    throw new Error(inFile + ': ' + data.length + ' floats, shape ' + shapeArg);
  const s = await ort.InferenceSession.create(model,
    {executionProviders: ['cpu'], intraOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', data, shape)};
  const out = (await s.run(feeds))[s.outputNames[0]];
  fs.writeFileSync(outFile, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(out.dims.join(','));
}

main().catch((e) => { console.error('ort_run.js: ' + e.message); process.exit(1); });
