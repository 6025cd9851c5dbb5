import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { makeOperationStore, type OperationRecord } from '@zxbackup/item-store';
import { effectiveState, runOperation, stopMarkerPath } from './operation-runner';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-oprun-'));

describe('runOperation', () => {
  let root: string;
  beforeEach(() => {
    root = tmp();
    fs.mkdirSync(path.join(root, 'operations'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('persists the operation running, then succeeded with its result, readable by another store instance', async () => {
    const operations = makeOperationStore(root);
    let seenWhileRunning: OperationRecord | undefined;
    const outcome = await runOperation({ backupRoot: root, operations }, 'SmartScan', { deep: false }, (control) => async () => {
      const other = await makeOperationStore(root).get(control.id)();
      if (E.isRight(other) && other.right._tag === 'Some') seenWhileRunning = other.right.value;
      control.progress({ done: 3, total: 4, phase: 'scan' });
      return E.right({ created: 7 });
    })();
    expect(E.isRight(outcome)).toBe(true);
    if (E.isLeft(outcome)) return;
    expect(seenWhileRunning?.state).toBe('running');
    expect(seenWhileRunning?.pid).toBe(process.pid);
    const stored = await makeOperationStore(root).get(outcome.right.id)();
    expect(E.isRight(stored) && stored.right._tag === 'Some' && stored.right.value).toMatchObject({
      kind: 'SmartScan',
      state: 'succeeded',
      result: { created: 7 },
      progress: { done: 3, total: 4, phase: 'scan' },
    });
  });

  it('records a failure with its message and returns the Left', async () => {
    const operations = makeOperationStore(root);
    const outcome = await runOperation({ backupRoot: root, operations }, 'Purge', {}, () => TE.left({ _tag: 'StoreFailed', message: 'disk on fire' }))();
    expect(E.isLeft(outcome) && outcome.left).toEqual({ _tag: 'StoreFailed', message: 'disk on fire' });
    const listed = await operations.list()();
    expect(E.isRight(listed) && listed.right.map((o) => [o.state, o.error])).toEqual([['failed', 'disk on fire']]);
  });

  it('sees a stop marker written by another process and ends as stopped', async () => {
    const operations = makeOperationStore(root);
    const outcome = await runOperation({ backupRoot: root, operations }, 'SmartScan', {}, (control) => async () => {
      fs.writeFileSync(stopMarkerPath(root, control.id), 'now');
      await new Promise((r) => setTimeout(r, 600));
      let stopped = false;
      for (let i = 0; i < 20 && !stopped; i++) {
        stopped = control.shouldStop();
        if (!stopped) await new Promise((r) => setTimeout(r, 100));
      }
      return E.right({ stopped });
    })();
    expect(E.isRight(outcome) && outcome.right.result).toEqual({ stopped: true });
    if (E.isLeft(outcome)) return;
    const stored = await operations.get(outcome.right.id)();
    expect(E.isRight(stored) && stored.right._tag === 'Some' && stored.right.value.state).toBe('stopped');
    expect(fs.existsSync(stopMarkerPath(root, outcome.right.id))).toBe(false);
  });
});

describe('effectiveState', () => {
  const base: OperationRecord = { format: 1, id: 'x', kind: 'SmartScan', state: 'running', startedAt: 1, updatedAt: 1, progress: { done: 0 } };
  it('reports a running operation whose process is gone as interrupted', () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(dead.stdout.toString());
    expect(effectiveState({ ...base, pid: deadPid })).toBe('interrupted');
    expect(effectiveState({ ...base, pid: process.pid })).toBe('running');
    expect(effectiveState({ ...base, state: 'succeeded', pid: deadPid })).toBe('succeeded');
  });
});
