// The progress of operator commands: a bar redrawn in place on a terminal, plain lines elsewhere.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProgress } from '../../bin/commands/progress.js';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => (writes.push(s), true) } as unknown as NodeJS.WriteStream };
}

describe('createProgress', () => {
  it('draws one bar in place on a terminal and ends the line when done', () => {
    const out = stream(true);
    const p = createProgress({ stream: out.stream, label: 'rotate-kek', unit: 'keys re-wrapped' });
    p.update(0, 200);
    p.update(100, 200); // within 100 ms of the last draw: skipped
    p.finish();
    assert.equal(out.writes.length, 2);
    assert.ok(out.writes.every((w) => w.startsWith('\r[')));
    assert.equal(out.writes[0], `\r[${'-'.repeat(30)}] 0/200 keys re-wrapped 0%`);
    assert.equal(out.writes[1], `\r[${'#'.repeat(15)}${'-'.repeat(15)}] 100/200 keys re-wrapped 50%\n`);
  });

  it('writes a line at each tenth elsewhere, and the last one once', () => {
    const out = stream(false);
    const p = createProgress({ stream: out.stream, label: 'rotate-kek', unit: 'keys re-wrapped' });
    for (let done = 0; done <= 1000; done += 5) p.update(done, 1000);
    p.finish();
    assert.equal(out.writes.length, 11);
    assert.equal(out.writes[0], 'rotate-kek: 0/1000 keys re-wrapped (0%)\n');
    assert.equal(out.writes[5], 'rotate-kek: 500/1000 keys re-wrapped (50%)\n');
    assert.equal(out.writes.at(-1), 'rotate-kek: 1000/1000 keys re-wrapped (100%)\n');
  });

  it('counts nothing to do as done', () => {
    const out = stream(false);
    const p = createProgress({ stream: out.stream, label: 'x', unit: 'keys' });
    p.update(0, 0);
    p.finish();
    assert.deepEqual(out.writes, ['x: 0/0 keys (100%)\n']);
  });
});
