import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../shared/config.js';
import {
  clientKey,
  normaliseClient,
  parseRate,
  parseSubnetList,
  subnetMatcher,
  trustProxyOption,
  waitText,
} from '../../shared/net/client-address.js';

describe('client addresses for the throttles', () => {
  it('normalises: IPv4 as is, mapped IPv4 unmapped, IPv6 to its /64, anything else to one "invalid" bucket', () => {
    assert.equal(normaliseClient('203.0.113.7'), '203.0.113.7');
    assert.equal(normaliseClient('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(normaliseClient('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(normaliseClient('2001:DB8:1:2::9'), normaliseClient('2001:db8:1:2:ffff::1'));
    assert.equal(normaliseClient('::1'), '0:0:0:0::/64');
    for (const bad of ['', 'x'.repeat(6000), '1.2.3.4, 5.6.7.8', '999.1.1.1', undefined])
      assert.equal(normaliseClient(bad), 'invalid');
  });

  it('hashes every client to 32 hex characters', () => {
    for (const ip of ['1.2.3.4', '2001:db8::1', 'f'.repeat(6000)]) assert.match(clientKey(ip), /^[0-9a-f]{32}$/);
    assert.notEqual(clientKey('1.2.3.4'), clientKey('1.2.3.5'));
  });

  it('matches allow-list subnets, mapped IPv4 included', () => {
    const allowed = subnetMatcher(parseSubnetList('127.0.0.1/32, 10.0.0.0/8, 2001:db8::/32'));
    assert.ok(allowed('127.0.0.1'));
    assert.ok(allowed('::ffff:10.9.8.7'));
    assert.ok(allowed('2001:db8:ffff::1'));
    assert.ok(!allowed('127.0.0.2'));
    assert.ok(!allowed('not an ip'));
    assert.ok(!subnetMatcher([])('127.0.0.1'));
  });

  it('reads TRUST_PROXY as none, a hop count, or a list', () => {
    assert.equal(trustProxyOption(''), false);
    const oneHop = trustProxyOption('1');
    assert.equal(typeof oneHop, 'function');
    assert.deepEqual(
      [0, 1].map((hop) => (oneHop as (a: string, h: number) => boolean)('x', hop)),
      [true, false],
    );
    assert.deepEqual(trustProxyOption('10.0.0.0/8,192.0.2.1'), ['10.0.0.0/8', '192.0.2.1/32']);
  });

  it('reads rates and says waits in words', () => {
    assert.deepEqual(parseRate('10/1h'), { max: 10, windowMs: 3_600_000 });
    assert.deepEqual(parseRate('5/15m'), { max: 5, windowMs: 900_000 });
    assert.deepEqual(parseRate('30/m'), { max: 30, windowMs: 60_000 });
    assert.throws(() => parseRate('10 per hour'), RangeError);
    assert.deepEqual([1, 45, 60, 61, 840, 900, 7200, 9000].map(waitText), [
      '1 second',
      '45 seconds',
      '1 minute',
      '2 minutes',
      '14 minutes',
      '15 minutes',
      '2 hours',
      '3 hours',
    ]);
  });

  it('stops the start on a bad throttling setting, naming it', () => {
    const bad: [string, string][] = [
      ['TRUST_PROXY', '10.0.0.0/99'],
      ['TRUST_PROXY', 'proxy.example'],
      ['RATE_LIMIT_ALLOWLIST', 'localhost'],
      ['RATE_LIMIT_LOGIN', '30 a minute'],
      ['LOGIN_LIMIT_IP', 'off'],
    ];
    for (const [setting, value] of bad) {
      assert.throws(
        () => parseConfig({ [setting]: value }),
        (err: unknown) => err instanceof ConfigError && err.setting === setting,
        `${setting}=${value}`,
      );
    }
    const cfg = parseConfig({});
    assert.equal(cfg.TRUST_PROXY, '');
    assert.equal(cfg.RATE_LIMIT_ALLOWLIST, '');
    assert.equal(cfg.LOGIN_LIMIT_ACCOUNT_IP, '5/15m');
  });
});
