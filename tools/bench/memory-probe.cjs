/*
 * Preload (`node -r ./tools/bench/memory-probe.cjs ...`) that samples process.memoryUsage()
 * every 50 ms and, at exit, writes the peak of each field in MB as JSON to $ZXB_MEMPROBE_OUT.
 * It says where a peak RSS lives: V8 heap (heapUsed/heapTotal), Buffers and other memory
 * outside the heap (external, arrayBuffers), or neither (the rest of rss: code, native
 * libraries such as LevelDB's caches, zlib state, allocator slack). Used by maildir.bench.ts.
 */
'use strict';
const { writeFileSync } = require('node:fs');

const target = process.env.ZXB_MEMPROBE_OUT;
if (target) {
  const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0, rssMinusHeapTotalAndExternal: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers']) peak[k] = Math.max(peak[k], m[k]);
    peak.rssMinusHeapTotalAndExternal = Math.max(peak.rssMinusHeapTotalAndExternal, m.rss - m.heapTotal - m.external);
  };
  setInterval(sample, 50).unref();
  process.on('exit', () => {
    sample();
    const mb = Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / 1048576)]));
    writeFileSync(target, JSON.stringify(mb) + '\n');
  });
}
