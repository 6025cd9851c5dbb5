// Test helpers: what a volume holds on disk, temp files apart from blobs wherever they are.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { isTempName, isWriterMark } from './temp-files';

const shardsOf = async (root: string): Promise<string[]> => (await fs.readdir(root)).filter((name) => /^[0-9a-f]{2}$/.test(name)).sort();

/** Every temp file of a volume: in `.tmp/` (anything there but writers' marks) and in the shards. */
export const tempFilesOf = async (root: string): Promise<string[]> => {
  const found = (await fs.readdir(path.join(root, '.tmp'))).filter((name) => !isWriterMark(name)).map((name) => `.tmp/${name}`);
  for (const shard of await shardsOf(root)) {
    for (const name of await fs.readdir(path.join(root, shard))) if (isTempName(name)) found.push(`${shard}/${name}`);
  }
  return found.sort();
};

/** Every file in the shards, temp files included. */
export const filesInShards = async (root: string): Promise<string[]> => {
  const found: string[] = [];
  for (const shard of await shardsOf(root)) found.push(...(await fs.readdir(path.join(root, shard))));
  return found.sort();
};

/** The files named like a blob (`<xx>/<digest>`, its shard matching). */
export const blobsInShards = async (root: string): Promise<Set<string>> =>
  new Set((await filesInShards(root)).filter((name) => /^[0-9a-f]{64}$/.test(name)));

/** Writers' marks in `.tmp/`. */
export const writerMarksOf = async (root: string): Promise<string[]> => (await fs.readdir(path.join(root, '.tmp'))).filter(isWriterMark);
