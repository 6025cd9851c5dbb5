const fs = require('node:fs'); const path = require('node:path'); const { execSync } = require('node:child_process');
const { makeLocalVolume } = require('@zxbackup/volumes-local');
const files = [];
for (const d of fs.readdirSync('/tmp/vb/corpus')) for (const f of fs.readdirSync('/tmp/vb/corpus/' + d)) files.push(path.join('/tmp/vb/corpus', d, f));
(async () => {
  const root = '/tmp/vb/vol2'; fs.rmSync(root, { recursive: true, force: true }); fs.mkdirSync(root); execSync('sync');
  const v = await makeLocalVolume({ root, compression: process.argv[2] ?? 'auto', earlyWritebackBytes: Number(process.env.EARLY ?? 134217728) })();
  const vol = v.right;
  const t0 = Date.now(); const c0 = process.cpuUsage(); const e0 = performance.eventLoopUtilization();
  let next = 0;
  await Promise.all(Array.from({ length: Number(process.argv[3] ?? 16) }, async () => { while (next < files.length) { const f = files[next++]; const r = await vol.putFile(f)(); if (r._tag === 'Left') throw new Error(JSON.stringify(r.left)); } }));
  const t1 = Date.now(); const c1 = process.cpuUsage(c0); const e1 = performance.eventLoopUtilization(e0);
  await vol.flush()();
  const t2 = Date.now(); const c2 = process.cpuUsage(c0);
  console.log(`put ${(t1 - t0) / 1000}s cpu user ${c1.user / 1e6} sys ${c1.system / 1e6} main-active ${(e1.active/1000).toFixed(2)}s | +flush ${(t2 - t0) / 1000}s cpu ${(c2.user + c2.system) / 1e6}`);
})();
