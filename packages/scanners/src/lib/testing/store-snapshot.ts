import type { AccountId, FolderMeta, ItemId, MetadataStore, Transaction } from '@zxbackup/item-store';
import type { BlobVolume, Digest } from '@zxbackup/volume-contract';
import { unwrap } from './harness';

const readAllBytes = async (stream: NodeJS.ReadableStream): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
  return Buffer.concat(chunks);
};

export type Snapshot = Record<string, Array<{ content: string; flags: string[]; receivedAt: number }>>;

/**
 * What the backup says an account held at `at` ('now' for the current state), in the fake
 * source's snapshot shape: folder path → messages (content read back from the volume).
 */
export const storeSnapshot = async (store: MetadataStore, volume: BlobVolume, account: AccountId, at: number | 'now'): Promise<Snapshot> => {
  const folders = new Map<ItemId, FolderMeta>();
  const messages: Array<Transaction> = [];
  await unwrap(
    store.forEachItemAt(account, at, (id, state) => {
      if (state.kind === 'folder') folders.set(id, state);
      if (state.kind === 'message') messages.push(state);
    }),
  );
  const out: Snapshot = {};
  for (const f of folders.values()) out[f.path] = [];
  for (const m of messages) {
    if (m.kind !== 'message') continue;
    const path = folders.get(m.folderId)?.path ?? `?${m.folderId}`;
    const content = await readAllBytes(await unwrap(volume.get(m.digest as Digest)));
    (out[path] ??= []).push({ content: content.toString('latin1'), flags: [...m.flags].sort(), receivedAt: m.receivedAt });
  }
  for (const list of Object.values(out)) list.sort((x, y) => x.content.localeCompare(y.content));
  return out;
};

/** Every current item of an account: id → state. */
export const currentItems = async (store: MetadataStore, account: AccountId): Promise<Map<ItemId, Transaction>> => {
  const out = new Map<ItemId, Transaction>();
  await unwrap(store.forEachItemAt(account, 'now', (id, s) => void out.set(id, s)));
  return out;
};
