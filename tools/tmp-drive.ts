import * as fs from 'node:fs';
import * as path from 'node:path';
import { execSync } from 'node:child_process';
import { makeLocalVolume } from '@zxbackup/volumes-local';
const files: string[] = [];
for (const d of fs.readdirSync('/tmp/vb/corpus')) for (const f of fs.readdirSync('/tmp/vb/corpus/' + d)) files.push(path.join('/tmp/vb/corpus', d, f));
(async () => {
  const root = '/tmp/vb/vol2'; fs.rmSync(root, { recursive: true, force: true }); fs.mkdirSync(root); execSync('sync');
  const v = await makeLocalVolume({ root, compression: (process.argv[2] ?? 'auto') as 'auto' })();
  if (v._tag === 'Left') throw new Error('open');
  const vol = v.right;
  const t0 = Date.now(); const c0 = process.cpuUsage();
  let next = 0;
  await Promise.all(Array.from({ length: Number(process.argv[3] ?? 16) }, async () => { while (next < files.length) { const f = files[next++] as string; const r = await vol.putFile(f)(); if (r._tag === 'Left') throw new Error(JSON.stringify(r.left)); } }));
  const t1 = Date.now(); const c1 = process.cpuUsage(c0);
  await vol.flush()();
  const t2 = Date.now(); const c2 = process.cpuUsage(c0);
  console.log(`put ${(t1 - t0) / 1000}s cpu user ${c1.user / 1e6} sys ${c1.system / 1e6} | +flush ${(t2 - t0) / 1000}s cpu ${(c2.user + c2.system) / 1e6}`);
})();
