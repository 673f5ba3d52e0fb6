// The user-relay address policy over a table of addresses and URLs, and its connect-time lookup against a
// real listener on 127.0.0.1 reached through a name a stub resolver points there (DNS rebinding).
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import { connect, createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  checkResolvesPublic,
  checkUserRelayUrl,
  isPublicAddress,
  publicOnlyLookup,
  RelayRefusedError,
  type Resolver,
  type UserRelayPolicy,
} from '../../shared/user-relay-policy.js';

const STRICT: UserRelayPolicy = { allowWs: false, allowPrivate: false, allowlist: [] };

/** A resolver that knows a few names, like a DNS server an attacker controls. */
function stubResolver(table: Record<string, string[]>, asked: string[] = []): Resolver {
  return (hostname, _options, callback) => {
    asked.push(hostname);
    const addrs = table[hostname];
    if (!addrs) return callback(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    callback(
      null,
      addrs.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
    );
  };
}

describe('user relay address policy', () => {
  it('allows only public unicast addresses', () => {
    const blocked = [
      '0.0.0.0',
      '0.1.2.3',
      '127.0.0.1',
      '127.255.255.254',
      '10.0.0.1',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '169.254.0.1',
      '100.64.0.1',
      '100.100.100.200',
      '192.0.0.1',
      '192.0.2.1',
      '198.18.0.1',
      '198.19.255.1',
      '198.51.100.7',
      '203.0.113.9',
      '224.0.0.1',
      '239.255.255.250',
      '240.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '::ffff:10.0.0.1',
      'fe80::1',
      'fc00::1',
      'fd00:ec2::254',
      'ff02::1',
      '2001:db8::1',
      '64:ff9b::7f00:1',
      '2002:7f00:1::1',
      '2001::1',
      '100::1',
      'not-an-ip',
      '',
      'localhost',
    ];
    for (const ip of blocked) assert.equal(isPublicAddress(ip), false, ip);
    const allowed = [
      '1.1.1.1',
      '8.8.8.8',
      '93.184.216.34',
      '172.32.0.1',
      '100.128.0.1',
      '2606:4700:4700::1111',
      '2a00:1450:4001::1',
      '::ffff:1.1.1.1',
    ];
    for (const ip of allowed) assert.equal(isPublicAddress(ip), true, ip);
  });

  it('refuses ws://, userinfo, non-public literals (every IPv4 spelling URL normalises), local and metadata names', () => {
    const refused: [string, RegExp][] = [
      ['ws://relay.example.com', /wss:\/\//],
      ['https://relay.example.com', /wss:\/\//],
      ['wss://user:pass@relay.example.com', /user name or password/],
      ['wss://user@relay.example.com', /user name or password/],
      ['wss://127.0.0.1', /not a public address/],
      ['wss://2130706433', /not a public address/],
      ['wss://0x7f.1', /not a public address/],
      ['wss://0177.0.0.1', /not a public address/],
      ['wss://127.1', /not a public address/],
      ['wss://0.0.0.0:6379', /not a public address/],
      ['wss://0', /not a public address/],
      ['wss://[::1]:1/', /not a public address/],
      ['wss://[::]', /not a public address/],
      ['wss://[::ffff:127.0.0.1]', /not a public address/],
      ['wss://[::ffff:169.254.169.254]', /not a public address/],
      ['wss://169.254.169.254/latest/meta-data', /not a public address/],
      ['wss://[fd00:ec2::254]', /not a public address/],
      ['wss://10.1.2.3', /not a public address/],
      ['wss://192.168.0.1', /not a public address/],
      ['wss://[fe80::1]', /not a public address/],
      ['wss://metadata.google.internal', /not a public address/],
      ['wss://METADATA.GOOGLE.INTERNAL.', /not a public address/],
      ['wss://metadata', /not a public address/],
      ['wss://localhost', /not a public address/],
      ['wss://LocalHost.:8080', /not a public address/],
      ['wss://foo.localhost', /not a public address/],
      ['wss://printer.local', /not a public address/],
      ['wss://redis', /not a public address/],
      ['not a url', /not a URL/],
    ];
    for (const [url, reason] of refused) {
      assert.throws(
        () => checkUserRelayUrl(url, STRICT),
        (err: Error) => err instanceof RelayRefusedError && reason.test(err.message),
        url,
      );
    }
    assert.deepEqual(checkUserRelayUrl('wss://Relay.Example.com/', STRICT), {
      url: 'wss://relay.example.com',
      host: 'relay.example.com',
    });
    assert.deepEqual(checkUserRelayUrl('wss://1.1.1.1:443/nostr', STRICT), {
      url: 'wss://1.1.1.1/nostr',
      host: '1.1.1.1',
    });
  });

  it('lets the development settings through, and an allow-list narrow the hosts', () => {
    assert.equal(
      checkUserRelayUrl('ws://relay.example.com', { ...STRICT, allowWs: true }).url,
      'ws://relay.example.com',
    );
    assert.throws(() => checkUserRelayUrl('ws://127.0.0.1:7000', { ...STRICT, allowWs: true }), RelayRefusedError);
    assert.equal(
      checkUserRelayUrl('ws://127.0.0.1:7000', { allowWs: true, allowPrivate: true, allowlist: [] }).url,
      'ws://127.0.0.1:7000',
    );
    assert.throws(
      () => checkUserRelayUrl('ws://u:p@127.0.0.1:7000', { allowWs: true, allowPrivate: true, allowlist: [] }),
      /user name or password/,
    );
    const listed = { ...STRICT, allowlist: ['relay.example.com', '1.1.1.1'] };
    assert.equal(checkUserRelayUrl('wss://relay.example.com', listed).host, 'relay.example.com');
    assert.equal(checkUserRelayUrl('wss://1.1.1.1', listed).host, '1.1.1.1');
    assert.throws(() => checkUserRelayUrl('wss://other.example.com', listed), /allowed relay list/);
    // The list narrows; it does not open private addresses.
    assert.throws(
      () => checkUserRelayUrl('wss://127.0.0.1', { ...STRICT, allowlist: ['127.0.0.1'] }),
      /not a public address/,
    );
  });

  it('refuses at creation a name that resolves to any non-public address; lets through one that does not resolve', async () => {
    const resolve = stubResolver({
      'evil.example.com': ['93.184.216.34', '127.0.0.1'],
      'meta.example.com': ['169.254.169.254'],
      'ok.example.com': ['93.184.216.34'],
    });
    await assert.rejects(checkResolvesPublic('evil.example.com', resolve), RelayRefusedError);
    await assert.rejects(checkResolvesPublic('meta.example.com', resolve), RelayRefusedError);
    await checkResolvesPublic('ok.example.com', resolve);
    await checkResolvesPublic('nowhere.example.com', resolve);
    // A resolver that never answers does not hold the request past the timeout.
    await checkResolvesPublic('slow.example.com', () => undefined, 50);
  });

  describe('connect-time lookup (DNS rebinding)', () => {
    let server: Server;
    let port = 0;
    let accepted = 0;

    before(async () => {
      server = createServer((s) => {
        accepted++;
        s.destroy();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      port = (server.address() as { port: number }).port;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    const attempt = (host: string, lookup: ReturnType<typeof publicOnlyLookup>) =>
      new Promise<string>((resolve) => {
        const socket = connect({ host, port, lookup });
        socket.once('connect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });

    it('never connects to a name that now resolves to loopback; does connect through the same resolver unguarded', async () => {
      const asked: string[] = [];
      const resolve = stubResolver(
        { 'rebind.example.com': ['127.0.0.1'], 'mixed.example.com': ['93.184.216.34', '127.0.0.1'] },
        asked,
      );
      assert.equal(await attempt('rebind.example.com', publicOnlyLookup(resolve)), 'ERELAYREFUSED');
      assert.equal(await attempt('mixed.example.com', publicOnlyLookup(resolve)), 'ERELAYREFUSED');
      assert.deepEqual(asked, ['rebind.example.com', 'mixed.example.com']);
      assert.equal(accepted, 0, 'the listener on 127.0.0.1 was never reached');
      // The control: the same name through the same resolver without the check does reach the listener.
      const unguarded: ReturnType<typeof publicOnlyLookup> = (hostname, options, callback) =>
        resolve(hostname, { all: true }, (err, addrs) =>
          options.all ? callback(err, addrs) : callback(err, addrs[0]?.address ?? '', addrs[0]?.family),
        );
      assert.equal(await attempt('rebind.example.com', unguarded), 'connected');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(accepted, 1);
    });
  });
});
