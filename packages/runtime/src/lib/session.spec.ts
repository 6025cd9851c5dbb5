import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import { openWriter } from './session';

describe('openWriter', () => {
  let root: string;

  beforeEach(async () => {
    root = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-session-')), 'backup');
  });

  afterEach(async () => {
    await fs.rm(path.dirname(root), { recursive: true, force: true });
  });

  it('closes what it opened when a later step fails, so that a retry in the same process works', async () => {
    const first = await openWriter(root, { initialize: true })();
    if (E.isLeft(first)) throw new Error(first.left.message);
    await first.right.close();

    // The volume cannot open (its configuration is damaged): the metadata store and the id
    // allocator were open by then.
    const config = path.join(root, 'volume.json');
    await fs.writeFile(config, '{"type": "tape"}');
    const failed = await openWriter(root, { initialize: false })();
    expect(E.isLeft(failed)).toBe(true);

    await fs.rm(config);
    const retried = await openWriter(root, { initialize: false })();
    if (E.isLeft(retried)) throw new Error(`the retry failed: ${retried.left.message}`);
    expect((await retried.right.txIds.allocate()())._tag).toBe('Right');
    await retried.right.close();
  });
});
