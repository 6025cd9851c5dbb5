import { XMLParser } from 'fast-xml-parser';
import * as E from 'fp-ts/Either';
import * as t from 'io-ts';
import type { ListedObject } from './object-store';

// Every value as the text it is (a key of digits stays a string); `Contents` always a list.
const parser = new XMLParser({ parseTagValue: false, ignoreAttributes: true, isArray: (name) => name === 'Contents' });

const Listed = t.intersection([t.type({ Key: t.string, Size: t.string }), t.partial({ LastModified: t.string })]);
const ListPage = t.type({
  ListBucketResult: t.intersection([
    t.type({ IsTruncated: t.string }),
    t.partial({ Contents: t.array(Listed), NextContinuationToken: t.string }),
  ]),
});

/**
 * One page of a ListObjectsV2 answer: its objects, and the token of the next page when it is
 * truncated. A document of another shape throws, naming what is wrong (the caller maps it).
 */
export const decodeListPage = (xml: string): { readonly objects: ListedObject[]; readonly next: string | undefined } => {
  let doc: unknown;
  try {
    doc = parser.parse(xml);
  } catch (e) {
    throw new Error(`the store's listing is not XML: ${(e as Error).message}`);
  }
  const decoded = ListPage.decode(doc);
  if (E.isLeft(decoded)) {
    const where = decoded.left[0]?.context.map((c) => c.key).filter((k) => k !== '').join('.') ?? '?';
    throw new Error(`the store's listing is not a ListObjectsV2 result (first problem at ${where})`);
  }
  const page = decoded.right.ListBucketResult;
  const objects = (page.Contents ?? []).map((c): ListedObject => {
    const size = Number(c.Size);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`the store's listing gives ${c.Key} the size "${c.Size}"`);
    const lastModified = c.LastModified === undefined ? undefined : new Date(c.LastModified);
    return { key: c.Key, size, ...(lastModified === undefined || Number.isNaN(lastModified.getTime()) ? {} : { lastModified }) };
  });
  const truncated = page.IsTruncated === 'true';
  if (truncated && (page.NextContinuationToken ?? '') === '') throw new Error("the store's listing is truncated but names no next page");
  return { objects, next: truncated ? page.NextContinuationToken : undefined };
};
