import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import { openWriter, type WriterSession } from '@zxbackup/runtime';
import { startService } from './service';
import type { SchedulerClock } from './scheduler';

const writeMessage = (maildir: string, name: string, body: string) => {
  fs.mkdirSync(path.join(maildir, 'cur'), { recursive: true });
  fs.mkdirSync(path.join(maildir, 'new'), { recursive: true });
  fs.mkdirSync(path.join(maildir, 'tmp'), { recursive: true });
  fs.writeFileSync(path.join(maildir, 'cur', `${name}:2,S`), `Subject: ${name}\nFrom: a@example.test\n\n${body}\n`);
};

const frozenClock = (now: number): SchedulerClock => ({ now: () => now, setTimeout: () => 0, clearTimeout: () => undefined });

const run = async <A>(te: () => Promise<E.Either<{ message: string }, A>>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
};

describe('the service', () => {
  let dir: string;
  let session: WriterSession | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-service-'));
    process.env['ZXBACKUP_SERVER_ID'] = 'service-spec';
  });
  afterEach(async () => {
    await session?.close();
    session = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs the SmartScan required after re-enabling, records live changes, plans the next scan and logs notifications', async () => {
    const maildir = path.join(dir, 'vmail', 'example.test', 'alice', 'Maildir');
    writeMessage(maildir, '1700000000.M1P1.host', 'first');
    const backup = path.join(dir, 'backup');
    session = await run(openWriter(backup, { initialize: true }));
    await run(session.path.config.set('ZxBackup_Source', `maildir:${path.join(dir, 'vmail')}`));
    await run(session.path.config.set('ZxBackup_RealTimeScannerNeedsSmartScan', 'TRUE'));
    const lines: string[] = [];
    const now = new Date(2026, 10, 26, 12, 0).getTime();
    const service = await run(startService({ session, clock: frozenClock(now), log: (l) => lines.push(l) }));
    try {
      // The required SmartScan ran before the scanner started, and cleared the mark.
      const account = 'alice@example.test' as never;
      const before = await run(session.store.forEachItemAt(account, 'now', () => undefined));
      expect(before).toBeGreaterThanOrEqual(3); // account, INBOX, one message
      expect(await session.path.config.get('ZxBackup_RealTimeScannerNeedsSmartScan')()).toEqual(E.right(O.none));
      expect(service.realTime).toBeDefined();
      expect(service.scheduler.planned()?.at).toBe(new Date(2026, 10, 27, 4, 0).getTime());

      writeMessage(maildir, '1700000001.M2P1.host', 'second, seen live');
      let count = before;
      for (let i = 0; i < 50 && count === before; i++) {
        await new Promise((r) => setTimeout(r, 100));
        count = await run(session.store.forEachItemAt(account, 'now', () => undefined));
      }
      expect(count).toBe(before + 1);
    } finally {
      await service.stop();
    }
    const log = fs.readFileSync(path.join(backup, 'log', 'notifications.log'), 'utf8');
    expect(log).toContain('operation.started: SmartScan started');
    expect(log).toContain('operation.finished: SmartScan succeeded');
    expect(log).toContain('scanner.stopped');
  }, 60_000);
});
