// relay-ingest's relay connection against a bare `ws` server that misbehaves on purpose: a half-open
// socket (no pongs), a relay that goes away; plus the subscription plan and the request parser.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { RelayConnection } from '../../relay-ingest/relay-connection.js';
import { SubscriptionPlan } from '../../relay-ingest/subscription-plan.js';
import { normalizeRelayUrl } from '../../shared/nostr/relay-url.js';
import { isNip04Payload, parseNip46Request } from '../../shared/nip46/protocol.js';
import { testLogger } from '../support/logs.js';

const TUNING = {
  minBackoffMs: 50,
  maxBackoffMs: 200,
  pingIntervalMs: 100,
  connectTimeoutMs: 1000,
  sinceWindowSeconds: 60,
  maxLookbackSeconds: 600,
  publishTimeoutMs: 300,
  maxMessageChars: 10_000,
  resubscribeAfterClosedMs: 50,
};

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function server() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  const sockets: WebSocket[] = [];
  const messages: unknown[][][] = [];
  wss.on('connection', (ws) => {
    const i = sockets.push(ws) - 1;
    messages[i] = [];
    ws.on('message', (d) => messages[i]!.push(JSON.parse(d.toString()) as unknown[]));
  });
  const url = () => `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  return { wss, sockets, messages, url };
}

describe('relay connection', () => {
  const log = testLogger('relay-connection');
  const conns: RelayConnection[] = [];
  const servers: WebSocketServer[] = [];
  after(async () => {
    for (const c of conns) await c.close();
    for (const s of servers) {
      for (const ws of s.clients) ws.terminate();
      await new Promise((r) => s.close(r));
    }
  });

  it('drops a half-open socket (no pong) and resubscribes with a since window on the new one', async () => {
    const s = server();
    servers.push(s.wss);
    await new Promise((r) => s.wss.once('listening', r));
    const events: unknown[] = [];
    const conn = new RelayConnection(
      s.url(),
      { onEvent: (_r, e) => events.push(e), onOversized: () => undefined },
      log,
      TUNING,
    );
    conns.push(conn);
    conn.setSubscription('kf46-0', { kinds: [24133], '#p': ['a'.repeat(64)] });
    conn.start();
    await waitFor(() => s.messages[0]?.length === 1);
    const [type, id, filter] = s.messages[0]![0]! as [string, string, { since: number }];
    assert.equal(type, 'REQ');
    assert.equal(id, 'kf46-0');
    assert.ok(Math.abs(filter.since - (Math.floor(Date.now() / 1000) - 60)) <= 2);

    // Half-open: the server stops reading, so pings go unanswered.
    (s.sockets[0] as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitFor(() => s.sockets.length === 2, 3000);
    await waitFor(() => s.messages[1]?.length === 1);
    assert.equal((s.messages[1]![0] as unknown[])[0], 'REQ');
    await waitFor(() => conn.connected);

    // Events for our subscription reach the handler; oversized ones do not.
    s.sockets[1]!.send(JSON.stringify(['EVENT', 'kf46-0', { id: 'x' }]));
    s.sockets[1]!.send(JSON.stringify(['EVENT', 'other-sub', { id: 'y' }]));
    await waitFor(() => events.length === 1);
    assert.deepEqual(events, [{ id: 'x' }]);
  });

  it('reconnects after the relay goes away, and publish waits for OK', async () => {
    const s = server();
    servers.push(s.wss);
    await new Promise((r) => s.wss.once('listening', r));
    const port = (s.wss.address() as AddressInfo).port;
    const changes: boolean[] = [];
    const conn = new RelayConnection(
      s.url(),
      { onEvent: () => undefined, onOversized: () => undefined, onConnectedChange: (_r, c) => changes.push(c) },
      log,
      TUNING,
    );
    conns.push(conn);
    conn.start();
    await waitFor(() => conn.connected);
    s.wss.on('connection', (ws) =>
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString()) as unknown[];
        if (m[0] === 'EVENT') ws.send(JSON.stringify(['OK', (m[1] as { id: string }).id, true, '']));
      }),
    );
    s.sockets[0]!.on('message', (d) => {
      const m = JSON.parse(d.toString()) as unknown[];
      if (m[0] === 'EVENT')
        s.sockets[0]!.send(JSON.stringify(['OK', (m[1] as { id: string }).id, false, 'duplicate: have it']));
    });
    const ev = {
      id: 'e'.repeat(64),
      pubkey: 'p'.repeat(64),
      sig: 's'.repeat(128),
      kind: 24133,
      content: '',
      tags: [],
      created_at: 1,
    };
    assert.deepEqual(await conn.publish(ev), { ok: true, message: 'duplicate: have it' });

    for (const ws of s.sockets) ws.terminate();
    await waitFor(() => !conn.connected);
    assert.deepEqual(await conn.publish(ev), { ok: false, message: 'not connected' });
    await waitFor(() => conn.connected, 3000);
    assert.deepEqual(changes.slice(0, 3), [true, false, true]);
    assert.equal((s.wss.address() as AddressInfo).port, port);
  });

  it("listens for a pubkey only once the relay's EOSE confirms the REQ naming it, and not after CLOSED or a reconnect", async () => {
    const s = server();
    servers.push(s.wss);
    await new Promise((r) => s.wss.once('listening', r));
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
    const heard: string[][] = [];
    const conn = new RelayConnection(
      s.url(),
      { onEvent: () => undefined, onOversized: () => undefined, onListening: (_r, pks) => heard.push([...pks]) },
      log,
      TUNING,
    );
    conns.push(conn);
    conn.setSubscription('kf46-0', { kinds: [24133], '#p': [a] });
    conn.start();
    await waitFor(() => s.messages[0]?.length === 1);
    assert.equal(conn.listeningFor(a), false, 'a REQ sent is not yet a subscription');
    const relay = s.sockets[0]!;
    relay.send(JSON.stringify(['EOSE', 'kf46-0']));
    await waitFor(() => conn.listeningFor(a));
    assert.deepEqual(heard, [[a]]);

    // The chunk grows: b is listened for after the new REQ's EOSE, a all along.
    conn.setSubscription('kf46-0', { kinds: [24133], '#p': [a, b] });
    await waitFor(() => s.messages[0]?.length === 2);
    assert.equal(conn.listeningFor(b), false);
    assert.equal(conn.listeningFor(a), true);
    relay.send(JSON.stringify(['EOSE', 'kf46-0']));
    await waitFor(() => conn.listeningFor(b));

    relay.send(JSON.stringify(['CLOSED', 'kf46-0', 'error: shutting down']));
    await waitFor(() => !conn.listeningFor(a));
    assert.equal(conn.listeningFor(b), false, 'a closed subscription listens for nobody');

    // Resent after CLOSED (resubscribeAfterClosedMs), confirmed, then the socket drops: nothing is listened for.
    await waitFor(() => s.messages[0]?.length === 3);
    relay.send(JSON.stringify(['EOSE', 'kf46-0']));
    await waitFor(() => conn.listeningFor(b));
    relay.terminate();
    await waitFor(() => !conn.connected);
    assert.equal(conn.listeningFor(a) || conn.listeningFor(b), false);
    await waitFor(() => s.messages[1]?.length === 1, 3000);
    assert.equal(conn.listeningFor(a), false, 'resubscribed on the new socket, not yet confirmed');
    s.sockets[1]!.send(JSON.stringify(['EOSE', 'kf46-0']));
    await waitFor(() => conn.listeningFor(a) && conn.listeningFor(b));
  });

  it('trusts no EOSE of a subscription whose REQs piled up unanswered (a relay that never sends EOSE)', async () => {
    const s = server();
    servers.push(s.wss);
    await new Promise((r) => s.wss.once('listening', r));
    const a = 'a'.repeat(64);
    const conn = new RelayConnection(s.url(), { onEvent: () => undefined, onOversized: () => undefined }, log, TUNING);
    conns.push(conn);
    conn.start();
    await waitFor(() => conn.connected);
    for (let i = 0; i <= 64; i++)
      conn.setSubscription('kf46-0', { kinds: [24133], '#p': [a, i.toString(16).padStart(64, '0')] });
    await waitFor(() => s.messages[0]?.length === 65);
    s.sockets[0]!.send(JSON.stringify(['EOSE', 'kf46-0']));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(conn.listeningFor(a), false, 'which REQ that EOSE answers cannot be known');
  });
});

describe('subscription plan', () => {
  it('re-sends only the chunk that changed', () => {
    const plan = new SubscriptionPlan(2);
    assert.deepEqual(plan.assign(['a', 'b', 'c']), [0, 1]);
    assert.deepEqual(plan.chunk(0), ['a', 'b']);
    assert.deepEqual(plan.assign(['a', 'b', 'c', 'd']), [1]);
    assert.deepEqual(plan.assign(['b', 'c', 'd']), [0]);
    assert.deepEqual(plan.assign(['b', 'c', 'd', 'e']), [0]);
    assert.deepEqual(plan.assign([]), [0, 1]);
    assert.deepEqual(plan.chunk(1), []);
  });

  it('spells relay urls one way', () => {
    assert.equal(normalizeRelayUrl('WSS://Relay.Example.com/'), 'wss://relay.example.com');
    assert.equal(normalizeRelayUrl('ws://127.0.0.1:7000'), 'ws://127.0.0.1:7000');
    assert.equal(normalizeRelayUrl('wss://r.example/path/'), 'wss://r.example/path/');
    assert.equal(normalizeRelayUrl('https://r.example'), undefined);
    assert.equal(normalizeRelayUrl('not a url'), undefined);
  });
});

describe('nip46 request parsing', () => {
  it('keeps the id for an error reply whenever there is one', () => {
    assert.deepEqual(parseNip46Request('{"id":"1","method":"ping","params":[]}'), {
      ok: true,
      request: { id: '1', method: 'ping', params: [] },
    });
    assert.deepEqual(parseNip46Request('{"id":"1","method":"ping"}'), {
      ok: true,
      request: { id: '1', method: 'ping', params: [] },
    });
    assert.deepEqual(parseNip46Request('{"id":"2","method":3}'), {
      ok: false,
      id: '2',
      error: 'method must be a string',
    });
    assert.equal(parseNip46Request('{"method":"ping"}').ok, false);
    assert.equal((parseNip46Request('[1]') as { id?: string }).id, undefined);
    assert.equal((parseNip46Request('nope') as { id?: string }).id, undefined);
    assert.equal(isNip04Payload('abc?iv=def'), true);
    assert.equal(isNip04Payload('AgAAAA=='), false);
  });
});
