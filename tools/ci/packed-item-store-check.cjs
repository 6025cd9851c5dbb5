// Runs in a scratch project where only the packed @zxbackup/item-store tarball is installed:
// writes a backup path with a short history through the public API, reopens it, and reads the
// item's history and its state at an instant back.
const assert = require('node:assert/strict');
const os = require('node:os');
const store = require('@zxbackup/item-store');

const root = process.argv[2];
const run = async (te) => {
  const r = await te();
  if (r._tag === 'Left') throw new Error(`${r.left._tag}: ${r.left.message}`);
  return r.right;
};

(async () => {
  const serverId = store.localServerId();
  await run(store.initBackupPath(root, { serverId, host: os.hostname() }));
  const bp = await run(store.openBackupPath(root, { serverId }));
  let db = await run(store.openMetadataStore(bp.metadataDir));
  const account = 'alice@example.test';
  const folder = { kind: 'folder', path: 'INBOX', view: 'message' };
  const msg = (flags) => ({ kind: 'message', folderId: 'inbox', flags, receivedAt: 1000 });
  await run(db.commit({ changes: [
    { kind: 'upsert', account, itemId: 'inbox', tx: 1, at: 1000, meta: folder },
    { kind: 'upsert', account, itemId: 'm1', tx: 2, at: 1000, meta: msg([]), digest: 'a'.repeat(64), size: 10 },
  ] }));
  await run(db.commit({ changes: [{ kind: 'upsert', account, itemId: 'm1', tx: 3, at: 2000, meta: msg(['\\Seen']) }] }));
  await run(db.close());

  db = await run(store.openMetadataStore(bp.metadataDir));
  const history = await run(db.getHistory(account, 'm1'));
  assert.equal(history._tag, 'Some');
  assert.deepEqual(history.value.map((t) => [t.tx, t.start, t.end, t.op, t.flags]), [
    [2, 1000, 2000, 'create', []],
    [3, 2000, null, 'update', ['\\Seen']],
  ]);
  const atT = store.stateAt(history.value, 1500);
  assert.equal(atT._tag, 'Some');
  assert.deepEqual(atT.value.flags, []);
  const decoded = store.decodeHistory(JSON.stringify(history.value));
  assert.equal(decoded._tag, 'Right');
  assert.equal(store.decodeHistory('{not json')._tag, 'Left');
  await run(db.close());
  console.log('packed @zxbackup/item-store: 1 passed, 0 failed');
})().catch((e) => {
  console.error(`packed @zxbackup/item-store check failed: ${e.stack || e}`);
  process.exit(1);
});
