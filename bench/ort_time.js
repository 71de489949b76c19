// Median seconds of one ONNX Runtime (CPU) forward pass:
//   node bench/ort_time.js MODEL.onnx BATCH THREADS REPEATS [SIDE]
// on a batch of uniform random images BATCH x 3 x SIDE x SIDE (default 224),
// one warm-up run first; intra-op threads THREADS, all graph optimisations,
// sequential execution. Needs bench/setup-ort.
const path = require('path');
const ort = require(path.join(__dirname, '..', 'build', 'ort', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, batch, threads, repeats] = process.argv.slice(2, 6).map((v, i) => (i ? +v : v));
  const side = +(process.argv[6] || 224);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
  const data = new Float32Array(batch * 3 * side * side);
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1;
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [batch, 3, side, side])};
  await session.run(feeds);
  const times = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log(times[Math.floor(times.length / 2)]);
}

main().catch((e) => { console.error(`ort_time: ${e.message}`); process.exit(1); });
