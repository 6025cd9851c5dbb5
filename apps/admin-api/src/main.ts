import * as E from 'fp-ts/Either';
import { openWriter, resolveBackupRoot } from '@zxbackup/runtime';
import { startService } from './lib/service';
import { systemSchedulerClock } from './lib/scheduler';

/**
 * `zxbackup-service run [--backup-path P]`: the long-running service (Real Time Scanner,
 * daily SmartScan, weekly purge, notifications) until SIGINT/SIGTERM.
 */
const USAGE = `Usage: zxbackup-service run [--backup-path P]

Runs the Real Time Scanner (ZxBackup_RealTimeScanner), the daily SmartScan at
ZxBackup_SmartScanTime when ZxBackup_ScanOperationScheduling is TRUE, the weekly purge on
ZxBackup_PurgeDay, and notifications (ZxBackup_NotificationLevel, ZxBackup_NotificationMail +
ZxBackup_NotificationSmtpUrl, ZxBackup_NotificationWebhook) until SIGINT or SIGTERM.
Configure with \`zxbackup config set ...\`; the backup path comes from --backup-path or
$ZXBACKUP_PATH.

Example:
  ZXBACKUP_PATH=/var/lib/zxbackup/backup zxbackup-service run
`;

const main = async (argv: ReadonlyArray<string>): Promise<number> => {
  if (argv[0] !== 'run' || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return argv[0] === 'run' || argv.includes('--help') || argv.includes('-h') ? 0 : 2;
  }
  const pathIndex = argv.indexOf('--backup-path');
  const root = resolveBackupRoot(pathIndex >= 0 && argv[pathIndex + 1] ? { 'backup-path': argv[pathIndex + 1] } : {});
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const session = await openWriter(root, { initialize: false })();
  if (E.isLeft(session)) {
    log(`cannot start: ${session.left.message}`);
    return session.left._tag === 'Busy' ? 4 : 3;
  }
  const service = await startService({ session: session.right, clock: systemSchedulerClock, log })();
  if (E.isLeft(service)) {
    log(`cannot start: ${service.left.message}`);
    await session.right.close();
    return 1;
  }
  const planned = service.right.scheduler.planned();
  log(`zxbackup service running on ${root}; next SmartScan ${planned ? new Date(planned.at).toISOString() : 'not scheduled'}`);
  // Watches are not persistent and the scheduler may have nothing planned: this timer keeps the
  // service alive until a signal arrives.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(keepAlive);
  log(`${signal}: stopping`);
  await service.right.stop();
  await session.right.close();
  return 0;
};

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`zxbackup-service: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 70;
  },
);
