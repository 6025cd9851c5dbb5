import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { AccountId } from '@zxbackup/item-store';
import { makeMaildirSource, makeMaildirTarget, makeRestoreEngine, makeScanEngine, type RestoreSummary, type ScanSummary } from '@zxbackup/scanners';
import type { Digest } from '@zxbackup/volume-contract';
import { fromPackageError, type AppError } from './errors';
import { withWriter } from './session';
import type { BucketOptions } from './volume-config';

/*
 * Helpers for the third-party store specs (unit: a directory as the mount; int: the S3 server):
 * a small Maildir tree, scans and restores through `withWriter`, and a canonical snapshot of an
 * account (bytes, flags, received date of every message, per folder) to compare restores with.
 */

/** A bucket on the S3 server of tools/services/s3-server.sh (its S3_* variables, or its defaults). */
export const testBucketOptions = (bucketName: string): BucketOptions => ({
  bucketName,
  accessKey: process.env['S3_ACCESS_KEY'] ?? 'test:tester',
  secret: process.env['S3_SECRET_KEY'] ?? 'testing',
  region: process.env['S3_REGION'] ?? 'us-east-1',
  url: `http://${process.env['S3_ENDPOINT'] ?? '127.0.0.1'}:${process.env['S3_PORT'] ?? '9000'}`,
});

export const ALICE = 'alice@example.test' as AccountId;
export const BOB = 'bob@example.test' as AccountId;

export const run = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) {
    const l = r.left as { _tag?: string; message?: string };
    throw new Error(`expected Right, got ${l._tag ?? ''}: ${l.message ?? JSON.stringify(r.left)}`);
  }
  return r.right;
};

export const runLeft = async <A>(te: TE.TaskEither<AppError, A>): Promise<AppError> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected Left, got Right');
  return r.left;
};

const maildirOf = (tree: string, account: AccountId): string => {
  const [user, domain] = account.split('@') as [string, string];
  return path.join(tree, domain, user, 'Maildir');
};

export const deliver = async (tree: string, account: AccountId, folder: string, text: string, flags: string[], receivedAt: number): Promise<string> => {
  const target = makeMaildirTarget({ root: tree });
  await run(target.ensureFolder(account, folder, { kind: 'folder', path: folder, view: 'message' }));
  const { sourceKey } = await run(target.writeMessage(account, folder, { content: Readable.from([Buffer.from(text)]), flags, receivedAt }));
  if (target.flush !== undefined) await run(target.flush());
  return sourceKey;
};

const message = (n: number, extra = ''): string =>
  `From: sender${n}@example.test\r\nTo: someone@example.test\r\nSubject: message ${n}\r\nMessage-ID: <m${n}@example.test>\r\n\r\nBody ${n} ${'lorem ipsum '.repeat(40 + n)}${extra}\r\n`;

const INBOX_DIR = (tree: string, account: AccountId) => maildirOf(tree, account);

/** Finds a message file by base name in INBOX (cur/ or new/). */
const findInbox = async (tree: string, account: AccountId, base: string): Promise<string> => {
  for (const sub of ['cur', 'new']) {
    const dir = path.join(INBOX_DIR(tree, account), sub);
    const name = (await fs.readdir(dir).catch(() => [] as string[])).find((n) => n === base || n.startsWith(`${base}:`));
    if (name !== undefined) return path.join(dir, name);
  }
  throw new Error(`no message ${base}`);
};

/** alice: 3 messages in INBOX, 1 in Projects; bob: 2. Returns the base names of alice's INBOX. */
export const populate = async (tree: string, seed = 0): Promise<string[]> => {
  const t0 = Date.UTC(2026, 0, 10, 8, 0, 0);
  const a1 = await deliver(tree, ALICE, 'INBOX', message(seed + 1), ['\\Seen'], t0);
  const a2 = await deliver(tree, ALICE, 'INBOX', message(seed + 2, ' with an attachment'), [], t0 + 60_000);
  const a3 = await deliver(tree, ALICE, 'INBOX', message(seed + 3), ['\\Seen', '\\Flagged'], t0 + 120_000);
  await deliver(tree, ALICE, 'Projects', message(seed + 4), ['\\Seen'], t0 + 180_000);
  await deliver(tree, BOB, 'INBOX', message(seed + 5), [], t0 + 240_000);
  await deliver(tree, BOB, 'INBOX', message(seed + 6), ['\\Answered', '\\Seen'], t0 + 300_000);
  return [a1, a2, a3];
};

/** Changes after the first scan: a flag set, a message deleted, a new one delivered. */
export const mutate = async (tree: string, inbox: string[], seed = 0): Promise<void> => {
  const flagged = await findInbox(tree, ALICE, inbox[1] as string);
  await fs.rename(flagged, path.join(INBOX_DIR(tree, ALICE), 'cur', `${inbox[1]}:2,FS`));
  await fs.unlink(await findInbox(tree, ALICE, inbox[0] as string));
  await deliver(tree, ALICE, 'INBOX', message(seed + 7), [], Date.UTC(2026, 0, 11, 8, 0, 0));
};

export const scan = (root: string, tree: string, at: number): Promise<ScanSummary> =>
  run(
    withWriter(root, { initialize: true }, (s) =>
      pipe(
        makeScanEngine({ store: s.store, volume: s.volume, txIds: s.txIds, source: makeMaildirSource({ root: tree }), clock: () => at }).smartScan(),
        TE.mapLeft(fromPackageError),
      ),
    ),
  );

export const restore = (root: string, account: AccountId, newAccount: AccountId, at: number, tree: string): Promise<RestoreSummary> =>
  run(
    withWriter(root, { initialize: false }, (s) =>
      pipe(
        makeRestoreEngine({ store: s.store, volume: s.volume, target: makeMaildirTarget({ root: tree }) }).restoreAccount({ account, newAccount, at, undelete: false }),
        TE.mapLeft(fromPackageError),
      ),
    ),
  );

/** Waits until a remote volume confirmed every cached blob. */
export const drain = (root: string): Promise<void> =>
  run(
    withWriter(root, { initialize: false }, (s) => {
      const v = s.volume as unknown as { drain?: (o: { timeoutMs: number }) => TE.TaskEither<unknown, void> };
      return v.drain === undefined ? TE.right(undefined) : pipe(v.drain({ timeoutMs: 60_000 }), TE.mapLeft(fromPackageError));
    }),
  );

/** The digests of every blob the backup path's volume lists. */
export const volumeDigests = (root: string): Promise<Digest[]> =>
  run(
    withWriter(root, { initialize: false }, (s) => {
      const out: Digest[] = [];
      return pipe(
        s.volume.list((d) => void out.push(d)),
        TE.mapLeft(fromPackageError),
        TE.map(() => out.sort()),
      );
    }),
  );

/** The digests the metadata of the backup path references. */
export const referencedDigests = (root: string): Promise<string[]> =>
  run(
    withWriter(root, { initialize: false }, (s) => {
      const out = new Set<string>();
      return pipe(
        s.store.forEachHistory(undefined, (_a, _i, h) => {
          for (const t of h) if (t.digest !== undefined) out.add(t.digest);
        }),
        TE.mapLeft(fromPackageError),
        TE.map(() => [...out].sort()),
      );
    }),
  );

export type AccountSnapshot = Record<string, Array<{ sha256: string; flags: string[]; receivedAt: number }>>;

/** Every folder of an account with its messages' bytes (hashed), flags and received dates. */
export const snapshotAccount = async (tree: string, account: AccountId): Promise<AccountSnapshot> => {
  const source = makeMaildirSource({ root: tree });
  const out: AccountSnapshot = {};
  const folders: Array<{ path: string; entries: ReadonlyArray<{ locator: string; flags: ReadonlyArray<string>; receivedAt: number }> }> = [];
  await run(
    source.scanAccount(account, undefined, { full: true }, async (ev) => {
      if (ev.type === 'folder') folders.push({ path: ev.meta.path, entries: ev.entries });
    }),
  );
  for (const f of folders) {
    const list: AccountSnapshot[string] = [];
    for (const e of f.entries) {
      const hash = createHash('sha256');
      for await (const c of await run(source.openBlob(account, e.locator))) hash.update(c as Buffer);
      list.push({ sha256: hash.digest('hex'), flags: [...e.flags].sort(), receivedAt: e.receivedAt });
    }
    out[f.path] = list.sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
  }
  return out;
};

export const countMessages = (s: AccountSnapshot): number => Object.values(s).reduce((n, l) => n + l.length, 0);
