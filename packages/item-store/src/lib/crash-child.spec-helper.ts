import { ClassicLevel } from 'classic-level';
import * as E from 'fp-ts/Either';
import type { AccountId, ItemId, TxId } from './codecs';
import type { ItemChange } from './api';
import { makeMetadataStore } from './metadata-store';

/*
 * Child of the crash test (metadata-store.crash.spec.ts): commits batches of BATCH changes
 * forever, each with the account stat whose cursor names the batch, and prints the number of
 * every batch once committed. The parent SIGKILLs it at some point.
 */
export const BATCH = 40;
const ITEMS = 25; // fewer items than changes: every batch holds several changes of some items

const main = async (dir: string): Promise<void> => {
  const store = makeMetadataStore(new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' }));
  const account = 'crash@example.test' as AccountId;
  for (let k = 0; ; k++) {
    const changes: ItemChange[] = [];
    for (let j = 0; j < BATCH; j++) {
      const n = k * BATCH + j;
      changes.push({
        kind: 'upsert',
        account,
        itemId: `m${(k * 7 + j) % ITEMS}` as ItemId,
        tx: (n + 1) as TxId,
        at: 1_000 + n,
        meta: { kind: 'message', folderId: 'inbox' as ItemId, flags: [], receivedAt: 1, subject: `state ${n}` },
      });
    }
    const r = await store.commit({ changes, accountStats: [{ format: 1, account, items: 0, deletedItems: 0, cursor: { batch: k } }] })();
    if (E.isLeft(r)) {
      process.stderr.write(`${JSON.stringify(r.left)}\n`);
      process.exit(2);
    }
    process.stdout.write(`${k}\n`);
  }
};

if (require.main === module) {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: crash-child <dir>');
  void main(dir);
}
