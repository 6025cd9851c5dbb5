import { mkdtempSync, promises as fs, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type { OperationRecord } from './api';
import { acquireWriteLock, initBackupPath, localServerId, openBackupPath } from './backup-path';
import { expectLeft, run } from './util.spec-helper';

const me = { serverId: 'server-a', host: 'mail-a.example.test' };

describe('backup path', () => {
  let dir: string;
  let root: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'zxb-path-'));
    root = join(dir, 'backup');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('initializes a stamped layout that opens again for the same server', async () => {
    const created = await run(initBackupPath(root, { ...me, now: 1234 }));
    expect(created.stamp).toEqual({ format: 1, serverId: 'server-a', host: 'mail-a.example.test', createdAt: 1234, formatVersion: 1 });
    for (const d of ['metadata', 'items', 'operations']) expect((await fs.stat(join(root, d))).isDirectory()).toBe(true);
    expect(JSON.parse(await fs.readFile(join(root, 'server.json'), 'utf8'))).toEqual(created.stamp);
    expect((await fs.readdir(root)).filter((n) => n.includes('.tmp') || n.includes('Probe'))).toEqual([]);

    const opened = await run(openBackupPath(root, { serverId: 'server-a' }));
    expect(opened.stamp).toEqual(created.stamp);
    expect(opened.metadataDir).toBe(join(root, 'metadata'));
    // a second init by the same server keeps the original stamp
    expect((await run(initBackupPath(root, { ...me, now: 9999 }))).stamp.createdAt).toBe(1234);
  });

  it('refuses a missing or uninitialized path, telling how to initialize it', async () => {
    const missing = expectLeft(await openBackupPath(root, { serverId: 'server-a' })(), 'BackupPathInvalid');
    expect(missing.message).toContain('zxbackup doSmartScan start');
    await fs.mkdir(root);
    const bare = expectLeft(await openBackupPath(root, { serverId: 'server-a' })(), 'BackupPathInvalid');
    expect(bare.message).toMatch(/not initialized.*zxbackup doSmartScan start/);
  });

  it("refuses another server's path, naming both servers", async () => {
    await run(initBackupPath(root, me));
    for (const r of [await openBackupPath(root, { serverId: 'server-b' })(), await initBackupPath(root, { serverId: 'server-b', host: 'b' })()]) {
      const e = expectLeft(r, 'BackupPathForeign');
      expect(e.message).toContain('server-a');
      expect(e.message).toContain('server-b');
      expect(e.message).toContain('retrieveMetadataFromArchive');
    }
  });

  it('refuses a stamp of an unknown format, and garbage', async () => {
    await run(initBackupPath(root, me));
    writeFileSync(join(root, 'server.json'), JSON.stringify({ format: 7, serverId: 'server-a', host: 'h', createdAt: 1, formatVersion: 1 }));
    expectLeft(await openBackupPath(root, { serverId: 'server-a' })(), 'UnsupportedFormat');
    writeFileSync(join(root, 'server.json'), JSON.stringify({ format: 1, serverId: 'server-a', host: 'h', createdAt: 1, formatVersion: 2 }));
    expectLeft(await openBackupPath(root, { serverId: 'server-a' })(), 'UnsupportedFormat');
    writeFileSync(join(root, 'server.json'), '{"format":1,');
    expectLeft(await openBackupPath(root, { serverId: 'server-a' })(), 'DecodeError');
  });

  it('refuses a path that is a file', async () => {
    writeFileSync(root, 'x');
    expectLeft(await initBackupPath(root, me)(), 'BackupPathInvalid');
  });

  it('derives a stable server id, or takes ZXBACKUP_SERVER_ID', () => {
    expect(localServerId({})).toBe(localServerId({}));
    expect(localServerId({})).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(localServerId({ ZXBACKUP_SERVER_ID: ' mail-7 ' })).toBe('mail-7');
  });

  describe('write lock', () => {
    it('admits one writer at a time and names the holder', async () => {
      await run(initBackupPath(root, me));
      const lock = await run(acquireWriteLock(root));
      const e = expectLeft(await acquireWriteLock(root)(), 'BackupPathLocked');
      expect(e.message).toContain(`process ${process.pid}`);
      await lock.release();
      await lock.release(); // idempotent
      const again = await run(acquireWriteLock(root));
      await again.release();
    });

    it('takes over a lock left by a dead process once it is stale', async () => {
      await run(initBackupPath(root, me));
      // what a SIGKILLed holder leaves: the lock directory, not refreshed for a long time
      await fs.mkdir(join(root, 'lock'));
      writeFileSync(join(root, 'lock.owner'), JSON.stringify({ pid: 999_999_999, host: 'elsewhere', since: 0 }));
      expect(expectLeft(await acquireWriteLock(root)(), 'BackupPathLocked').message).toContain('999999999');
      const old = new Date(Date.now() - 60_000);
      await fs.utimes(join(root, 'lock'), old, old);
      const lock = await run(acquireWriteLock(root));
      await lock.release();
    });

    it('waits for the lock of a killed process of this host to turn stale instead of failing', async () => {
      await run(initBackupPath(root, me));
      // A SIGKILLed holder of this host, last refresh 8 s ago: stale in about 2 s.
      await fs.mkdir(join(root, 'lock'));
      writeFileSync(join(root, 'lock.owner'), JSON.stringify({ pid: 999_999_999, host: hostname(), since: 0 }));
      const recent = new Date(Date.now() - 8_000);
      await fs.utimes(join(root, 'lock'), recent, recent);
      const started = Date.now();
      const lock = await run(acquireWriteLock(root));
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(JSON.parse(readFileSync(join(root, 'lock.owner'), 'utf8'))).toMatchObject({ pid: process.pid });
      await lock.release();
    }, 20_000);
  });

  describe('config and operations (files other processes read)', () => {
    it('sets, lists and unsets attributes, surviving a reopen', async () => {
      const bp = await run(initBackupPath(root, me));
      expect(await run(bp.config.get('ZxBackup_DataRetentionDays'))).toEqual(O.none);
      await Promise.all([bp.config.set('a', '1'), bp.config.set('b', '2'), bp.config.set('c', '3')].map((te) => run(te)));
      await run(bp.config.unset('b'));
      const reopened = await run(openBackupPath(root, { serverId: 'server-a' }));
      expect(await run(reopened.config.list())).toEqual({ a: '1', c: '3' });
      expect(await run(reopened.config.get('c'))).toEqual(O.some('3'));
      writeFileSync(join(root, 'config.json'), JSON.stringify({ format: 1, attributes: { a: 5 } }));
      expect(expectLeft(await reopened.config.list()(), 'DecodeError').message).toContain('attributes.a');
    });

    it('stores operation records one file each, decoded on read', async () => {
      const bp = await run(initBackupPath(root, me));
      const rec = (id: string, startedAt: number): OperationRecord => ({
        format: 1,
        id,
        kind: 'SmartScan',
        state: 'running',
        startedAt,
        updatedAt: startedAt,
        pid: process.pid,
        progress: { done: 3, total: 10, phase: 'accounts' },
      });
      await run(bp.operations.put(rec('6f9c1a52-0000-4000-8000-000000000002', 20)));
      await run(bp.operations.put(rec('6f9c1a52-0000-4000-8000-000000000001', 10)));
      await run(bp.operations.put({ ...rec('6f9c1a52-0000-4000-8000-000000000001', 10), state: 'succeeded', endedAt: 30 }));
      const all = await run(bp.operations.list());
      expect(all.map((o) => [o.id.slice(-1), o.state])).toEqual([
        ['1', 'succeeded'],
        ['2', 'running'],
      ]);
      expect(O.map((o: OperationRecord) => o.endedAt)(await run(bp.operations.get('6f9c1a52-0000-4000-8000-000000000001')))).toEqual(O.some(30));
      expect(await run(bp.operations.get('nope'))).toEqual(O.none);
      expectLeft(await bp.operations.get('../server')(), 'DecodeError');
      writeFileSync(join(root, 'operations', 'x.json'), JSON.stringify({ ...rec('x', 1), format: 3 }));
      expectLeft(await bp.operations.list()(), 'UnsupportedFormat');
      expect(E.isRight(await bp.operations.get('6f9c1a52-0000-4000-8000-000000000002')())).toBe(true);
    });
  });
});
