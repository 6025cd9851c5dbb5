// The scanner process of kill.spec.ts, which SIGKILLs it mid-way.
//   kill-scan.fixture.ts scan <root> <storeDir> <volumeDir> <txDir>
//     runs a SmartScan of the Maildir tree, printing "commit <n>" after each commit;
//   kill-scan.fixture.ts live <root> <storeDir> <volumeDir> <txDir> <logDir>
//     starts the Real Time Scanner, prints "ready", then "appended <pos>" after each log append
//     and "committing" when it is about to commit (and then never commits).
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { openMetadataStore, type MetadataStore } from '@zxbackup/item-store';
import { openChangeLog, openTxIdAllocator } from '@zxbackup/transaction-log';
import { makeMaildirSource } from '../maildir/maildir-source';
import { makeFileVolume } from '../testing/file-volume';
import { LiveChangeRecord, startRealTimeScanner } from './real-time-scanner';
import { makeScanEngine } from './smart-scan';

const fail = (why: unknown): never => {
  process.stderr.write(`kill-scan: ${JSON.stringify(why)}\n`);
  process.exit(2);
};
const must = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  return E.isLeft(r) ? fail(r.left) : r.right;
};

const main = async (): Promise<void> => {
  const [mode, root, storeDir, volumeDir, txDir, logDir] = process.argv.slice(2) as [string, string, string, string, string, string | undefined];
  const opened = await must(openMetadataStore(storeDir));
  const txIds = await must(openTxIdAllocator(txDir));
  const source = makeMaildirSource({ root });
  let commits = 0;
  if (mode === 'scan') {
    const store: MetadataStore = {
      ...opened,
      commit: (batch) => async () => {
        const r = await opened.commit(batch)();
        process.stdout.write(`commit ${++commits}\n`);
        return r;
      },
    };
    const volume = makeFileVolume(volumeDir, { putDelayMs: 3 });
    await must(makeScanEngine({ store, volume, txIds, source, batchSize: 20, concurrency: 4 }).smartScan());
    process.stdout.write('done\n');
    return;
  }
  const changeLog = await must(openChangeLog(logDir as string, LiveChangeRecord));
  const logged = {
    ...changeLog,
    append: (records: ReadonlyArray<LiveChangeRecord>) => async () => {
      const r = await changeLog.append(records)();
      if (E.isRight(r)) process.stdout.write(`appended ${r.right}\n`);
      return r;
    },
  };
  const store: MetadataStore = {
    ...opened,
    commit: () => () => {
      process.stdout.write('committing\n');
      return new Promise(() => undefined);
    },
  };
  await must(startRealTimeScanner({ store, volume: makeFileVolume(volumeDir), txIds, source, changeLog: logged, windowMs: 10 }));
  process.stdout.write('ready\n');
  // The watcher does not keep the process alive; the parent kills it.
  setInterval(() => undefined, 1000);
};

main().catch(fail);
