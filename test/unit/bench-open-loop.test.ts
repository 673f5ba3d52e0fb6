// The bench's open-loop driver (bench/open-loop.ts): wrk paced by a Lua schedule, latency counted from the
// scheduled send. Checked against a local echo server: the sends are spread evenly over each second (no
// burst at the top of the second, as autocannon's overallRate gave), and a server stall shows in the
// latency from the scheduled send for every request it delayed, not only for those that were in flight.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bucketUs, histogramMax, histogramPercentiles, mergeHistograms } from '../../bench/latency-histogram.js';
import { runOpenLoop, type OpenLoopRun } from '../../bench/open-loop.js';
import { writeTokenFile, type BenchUser } from '../../bench/seed-users.js';

describe('latency histograms', () => {
  it('keeps the top 7 bits of a value: under 1% error, exact below 128 µs', () => {
    assert.equal(bucketUs(0), 0);
    assert.equal(bucketUs(127), 127);
    assert.equal(bucketUs(128), 128);
    assert.equal(bucketUs(255), 254);
    assert.equal(bucketUs(12_345), 12_288);
    for (const v of [129, 1_000, 9_999, 15_000, 123_456, 9_876_543]) {
      const b = bucketUs(v);
      assert.ok(b <= v && (v - b) / v < 0.01, `${v} -> ${b}`);
    }
  });

  it('merges threads and reads percentiles by nearest rank', () => {
    const merged = mergeHistograms([
      { '1000': 98, '5000': 1 },
      { '1000': 0, '20000': 1 },
    ]);
    assert.equal(merged.get(1000), 98);
    assert.deepEqual(histogramPercentiles(merged, [50, 98, 99, 100]), [1000, 1000, 5000, 20000]);
    assert.equal(histogramMax(merged), 20000);
    assert.deepEqual(histogramPercentiles(new Map(), [50]), [Number.NaN]);
  });

  it('refuses a malformed histogram', () => {
    assert.throws(() => mergeHistograms([{ '100': -1 }]), /bad histogram entry/);
    assert.throws(() => mergeHistograms([{ x: 1 }]), /bad histogram entry/);
  });
});

/** Echoes the event content as the farm's answer does; `stall` holds every answer in a window. */
function echoServer(stall?: { fromMs: number; forMs: number }) {
  const arrivals: number[] = [];
  let t0 = 0;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (arrivals.length === 0) t0 = performance.now();
      const at = performance.now() - t0;
      arrivals.push(at);
      const content = /"content":"([^"]*)"/.exec(body)?.[1];
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ result: { kind: 1, content } }));
      };
      if (stall && at >= stall.fromMs && at < stall.fromMs + stall.forMs)
        setTimeout(answer, stall.fromMs + stall.forMs - at);
      else answer();
    });
  });
  return { server, arrivals };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const users = Array.from({ length: 5 }, (_, i) => ({ accessToken: `open-loop-token-${i}` })) as BenchUser[];

describe('open-loop driver (wrk)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'kf-open-loop-'));
    writeTokenFile(path.join(dir, 'tokens.txt'), users);
  });
  const files = (label: string): Pick<OpenLoopRun, 'tokenFile' | 'scriptFile' | 'outputFile'> => ({
    tokenFile: path.join(dir, 'tokens.txt'),
    scriptFile: path.join(dir, 'open-loop.lua'),
    outputFile: path.join(dir, `wrk-${label}.txt`),
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('offers the rate evenly over each second', async () => {
    const { server, arrivals } = echoServer();
    const url = await listen(server);
    try {
      const r = await runOpenLoop({ url, rate: 200, connections: 20, durationS: 2, ...files('even') });
      assert.equal(r.errors, 0);
      assert.ok(r.requests >= 300 && r.requests <= 440, `answered ${r.requests} of about 400`);
      // A busy machine may leave the last few slots unsent at the deadline; a burst leaves none.
      assert.ok(r.unsentDue <= 10, `slots due and unsent: ${r.unsentDue}`);
      // Every full 100 ms window: about 20 arrivals. A per-second quota sent in a burst puts 200 in one.
      const windows = new Array(Math.floor(arrivals[arrivals.length - 1]! / 100)).fill(0) as number[];
      for (const t of arrivals) if (t < windows.length * 100) windows[Math.floor(t / 100)]!++;
      assert.ok(Math.max(...windows) <= 80, `arrivals per 100 ms: ${windows.join(' ')}`);
    } finally {
      server.close();
    }
  });

  it('counts a stall from the scheduled send, for requests that waited for a connection too', async () => {
    // 10 connections at 200/s: each free for 50 ms at a time; a 400 ms stall holds all 10 and 80 slots go by.
    const { server } = echoServer({ fromMs: 800, forMs: 400 });
    const url = await listen(server);
    try {
      const r = await runOpenLoop({
        url,
        rate: 200,
        connections: 10,
        durationS: 2,
        ...files('stall'),
      });
      assert.equal(r.errors, 0);
      assert.ok(r.latencyMs.max >= 350, `max from the scheduled send ${r.latencyMs.max} ms`);
      // About one request in five was due during the stall; only the ten in flight saw it from their send.
      assert.ok(r.latencyMs.p90 >= 100, `p90 from the scheduled send ${r.latencyMs.p90} ms`);
      assert.ok(r.serviceLatencyMs.p90 < 150, `p90 from the actual send ${r.serviceLatencyMs.p90} ms`);
      assert.ok(r.sendLateMs.max >= 250, `latest send ${r.sendLateMs.max} ms after its slot`);
    } finally {
      server.close();
    }
  });
});
