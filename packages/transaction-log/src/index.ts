/**
 * @zxbackup/transaction-log — transaction ids, the durable append-only change log of the
 * Real Time Scanner, and the coalescing of bursts of changes. Plain files through `node:fs`
 * (no LevelDB); imports nothing of ours, so every other package may depend on it.
 */
export { openTxIdAllocator } from './lib/tx-id-allocator';
export type { TxIdAllocator, TxIdAllocatorOptions } from './lib/tx-id-allocator';
export { openChangeLog } from './lib/change-log';
export type { ChangeLog, ChangeLogOptions, RecoveryReport } from './lib/change-log';
export { LogPosition } from './lib/codecs';
export { makeCoalescer, systemClock } from './lib/coalescer';
export type { Clock, Coalescer, CoalescerOptions } from './lib/coalescer';
export type { TxLogError, TxLogErrorTag } from './lib/errors';
