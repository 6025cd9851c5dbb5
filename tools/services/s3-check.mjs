// s3-check.mjs - exercise the S3 operations the backup system needs against the
// server from s3-server.sh, via the npm `minio` client (8.x). Prints PASS/FAIL
// per operation; exit code 1 if anything failed.
// Usage (from the repository root, whose node_modules has minio):
//   eval "$(tools/services/s3-server.sh start)"; node tools/services/s3-check.mjs
// `minio` is loaded from $S3CHECK_DIR, the current directory or /tmp/s3check.
import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import path from 'node:path';

const bases = [process.env.S3CHECK_DIR, process.cwd(), '/tmp/s3check'].filter(Boolean);
let Minio, minioVersion;
for (const b of bases) {
  try {
    const req = createRequire(path.join(b, 'x.js'));
    [Minio, minioVersion] = [req('minio'), req('minio/package.json').version];
    break;
  } catch {}
}
if (!Minio) throw new Error(`npm package minio not found under ${bases.join(', ')}`);
const env = (k, d) => process.env[k] ?? d;
const MiB = 1024 * 1024;
const client = new Minio.Client({
  endPoint: env('S3_ENDPOINT', '127.0.0.1'),
  port: Number(env('S3_PORT', '9000')),
  useSSL: env('S3_USE_SSL', 'false') === 'true',
  accessKey: env('S3_ACCESS_KEY', 'test:tester'),
  secretKey: env('S3_SECRET_KEY', 'testing'),
  region: env('S3_REGION', 'us-east-1'),
  pathStyle: true,
  partSize: 8 * MiB, // default is 64 MiB; smaller so a 20 MiB stream goes multipart
});

const md5 = (b) => createHash('md5').update(b).digest('hex');
const readAll = async (s) => { const c = []; for await (const x of s) c.push(x); return Buffer.concat(c); };
const list = async (bucket, prefix, recursive) => {
  const out = [];
  for await (const o of client.listObjectsV2(bucket, prefix, recursive)) out.push(o.name ?? `prefix:${o.prefix}`);
  return out.sort();
};
const assert = (cond, msg) => { if (!cond) throw new Error(msg); };
const eq = (a, b, what) => assert(JSON.stringify(a) === JSON.stringify(b), `${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);

let failed = 0;
async function check(name, fn) {
  const t = Date.now();
  try {
    const note = await fn();
    console.log(`PASS ${name} (${Date.now() - t} ms)${note ? ` - ${note}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  }
}

console.log(`minio-js ${minioVersion} -> ${client.protocol}//${client.host}:${client.port}`);
const bucket = `zxb-check-${Date.now()}`;
const small = Buffer.from('hello backup blob\n');
const big = randomBytes(20 * MiB + 12345); // > 16 MiB, 3 parts of 8 MiB
const keys = ['a/small.txt', 'a/b/big.bin', 'a/b/c/deep.txt', 'a/sp ace ü.txt', 'z/other.txt'];

await check('makeBucket', () => client.makeBucket(bucket, env('S3_REGION', 'us-east-1')));
await check('bucketExists', async () => {
  eq(await client.bucketExists(bucket), true, 'existing bucket');
  eq(await client.bucketExists(`${bucket}-nope`), false, 'missing bucket');
});
await check('putObject (small)', async () => {
  for (const k of keys.filter((k) => k !== 'a/b/big.bin')) await client.putObject(bucket, k, small);
});
await check('putObject (20 MiB stream, multipart)', async () => {
  const stream = Readable.from((function* () { for (let i = 0; i < big.length; i += MiB) yield big.subarray(i, i + MiB); })());
  const r = await client.putObject(bucket, 'a/b/big.bin', stream, big.length, { 'x-amz-meta-origin': 'check' });
  assert(/-\d+$/.test(r.etag), `etag ${r.etag} is not a multipart etag`);
  return `etag ${r.etag}`;
});
await check('statObject', async () => {
  const s = await client.statObject(bucket, 'a/small.txt');
  eq([s.size, s.etag], [small.length, md5(small)], 'small size/etag');
  const b = await client.statObject(bucket, 'a/b/big.bin');
  eq([b.size, b.metaData.origin], [big.length, 'check'], 'big size/metadata');
});
await check('getObject (full)', async () => {
  eq((await readAll(await client.getObject(bucket, 'a/small.txt'))).toString(), small.toString(), 'small body');
  eq(md5(await readAll(await client.getObject(bucket, 'a/b/big.bin'))), md5(big), 'big body md5');
});
await check('getPartialObject (range)', async () => {
  for (const [off, len] of [[0, 10], [8 * MiB - 5, 10], [big.length - 7, 7]]) {
    const got = await readAll(await client.getPartialObject(bucket, 'a/b/big.bin', off, len));
    assert(got.equals(big.subarray(off, off + len)), `range ${off}+${len} mismatch (${got.length} bytes)`);
  }
  const tail = await readAll(await client.getPartialObject(bucket, 'a/b/big.bin', big.length - 100));
  eq(tail.length, 100, 'open-ended range length');
});
await check('listObjectsV2 (prefix, recursive)', async () => {
  eq(await list(bucket, 'a/', true), keys.filter((k) => k.startsWith('a/')).sort(), 'recursive a/');
  eq(await list(bucket, 'a/', false), ['a/small.txt', 'a/sp ace ü.txt', 'prefix:a/b/'].sort(), 'non-recursive a/');
  eq(await list(bucket, '', false), ['prefix:a/', 'prefix:z/'], 'top level');
});
await check('copyObject', async () => {
  await client.copyObject(bucket, 'copy/small.txt', `/${bucket}/a/small.txt`, new Minio.CopyConditions());
  eq((await readAll(await client.getObject(bucket, 'copy/small.txt'))).toString(), small.toString(), 'copied body');
});
await check('copyObject (multipart source)', async () => {
  await client.copyObject(bucket, 'copy/big.bin', `/${bucket}/a/b/big.bin`, new Minio.CopyConditions());
  eq(md5(await readAll(await client.getObject(bucket, 'copy/big.bin'))), md5(big), 'copied big md5');
});
await check('removeObject', async () => {
  await client.removeObject(bucket, 'z/other.txt');
  const err = await client.statObject(bucket, 'z/other.txt').then(() => null, (e) => e);
  assert(err?.code === 'NotFound', `stat after delete: ${err ? err.code : 'still exists'}`);
});
await check('removeObjects (bulk)', async () => {
  const all = await list(bucket, '', true);
  const res = await client.removeObjects(bucket, all);
  const errs = res.flat().filter((r) => r?.Code || r?.code);
  assert(errs.length === 0, `errors: ${JSON.stringify(errs)}`);
  eq(await list(bucket, '', true), [], 'listing after bulk delete');
  return `${all.length} objects`;
});
await check('removeBucket', () => client.removeBucket(bucket));

console.log(failed ? `${failed} check(s) FAILED` : 'ALL PASSED');
process.exit(failed ? 1 : 0);
