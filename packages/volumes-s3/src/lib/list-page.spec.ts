import { decodeListPage } from './list-page';

// Pages as S3 servers write them (this one after Swift's s3api).
const page = (contents: string, truncated: boolean, token?: string): string =>
  `<?xml version='1.0' encoding='UTF-8'?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b-1</Name><Prefix>p/</Prefix>` +
  `<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${String(truncated)}</IsTruncated>${token === undefined ? '' : `<NextContinuationToken>${token}</NextContinuationToken>`}` +
  `${contents}</ListBucketResult>`;
const object = (key: string, size: string, modified = '2026-11-26T15:01:02.345Z'): string =>
  `<Contents><Key>${key}</Key><LastModified>${modified}</LastModified><ETag>"abc"</ETag><Size>${size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;

describe('decodeListPage', () => {
  it('gives every object of a page with its key, size and date, and the next page of a truncated one', () => {
    const got = decodeListPage(page(object('p/index/0123', '12') + object('p/a&amp;b &lt;c&gt;', '0'), true, 'tok/en=='));
    expect(got.objects).toEqual([
      { key: 'p/index/0123', size: 12, lastModified: new Date('2026-11-26T15:01:02.345Z') },
      { key: 'p/a&b <c>', size: 0, lastModified: new Date('2026-11-26T15:01:02.345Z') },
    ]);
    expect(got.next).toBe('tok/en==');
  });

  it('a key of digits stays a string; one object is a list of one; an empty page is empty', () => {
    expect(decodeListPage(page(object('00012', '5'), false)).objects).toEqual([{ key: '00012', size: 5, lastModified: new Date('2026-11-26T15:01:02.345Z') }]);
    expect(decodeListPage(page('', false))).toEqual({ objects: [], next: undefined });
  });

  it.each([
    ['not XML', '<ListBucketResult><Contents>', /not XML|not a ListObjectsV2/],
    ['another document', '<Error><Code>AccessDenied</Code></Error>', /not a ListObjectsV2 result \(first problem at ListBucketResult/],
    ['a size that is no number', page(object('k', 'big'), false), /gives k the size "big"/],
    ['a truncated page without its token', page(object('k', '1'), true), /truncated but names no next page/],
  ])('%s is an error naming the problem', (_label, xml, message) => {
    expect(() => decodeListPage(xml)).toThrow(message);
  });
});
