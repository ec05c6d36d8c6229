// The ipaddr extension against cedar-wasm: a corpus of valid and invalid address
// strings (Rust std::net parsing corners, subnets, IPv4-in-IPv6 refusal), every
// predicate, isInRange and equality between pairs. One policy per check, so the
// satisfied/errored status of each is compared.
import '../../cedar/fast/v8-flags.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FastAuthorizer } from '../../cedar/fast/fast-authorizer.js';
import { WasmAuthorizer } from '../../cedar/wasm-authorizer.js';
import { Rng, TEST_SCHEMA } from './gen.js';
import { disagreement } from './diff.js';
import { parseIp } from '../../cedar/fast/ipaddr.js';
import { parseDecimal } from '../../cedar/fast/decimal.js';

export const IP_CORPUS = [
  '127.0.0.1',
  '127.255.0.9/8',
  '127.0.0.1/4',
  '10.0.0.0/8',
  '10.1.2.3',
  '10.1.2.3/33',
  '10.1.2.3/32',
  '01.2.3.4',
  '1.2.3.04',
  '1.2.3',
  '1.2.3.4.5',
  '256.1.1.1',
  '0.0.0.0/0',
  '255.255.255.255',
  '224.0.0.1',
  '224.0.0.1/3',
  '224.0.0.1/4',
  '239.1.1.1/31',
  '192.168.1.1/24',
  '192.168.1.0/24',
  '192.168.0.0/16',
  '10.0.0.1/+8',
  '10.0.0.1/08',
  '10.0.0.1/008',
  '10.0.0.1/',
  '/8',
  '10.0.0.1/-1',
  '10.0.0.1/255',
  '10.0.0.1/256',
  '10.0.0.1/8/8',
  ' 1.2.3.4',
  '1.2.3.4 ',
  'a.b.c.d',
  '',
  '::1',
  '::',
  '::/0',
  '::1/128',
  '::1/129',
  '::2',
  'ff02::1',
  'FF02::1/8',
  'ff02::1/7',
  'fe80::1%eth0',
  '1:2:3:4:5:6:7:8',
  '1:2:3:4:5:6:7::',
  '::1:2:3:4:5:6:7',
  '1:2:3:4:5:6:7:8:9',
  '1::2::3',
  ':1:2:3:4:5:6:7',
  '1:2:3:4:5:6:7:',
  '0000:0000::0001',
  '00000::1',
  '12345::',
  'abcd:EF01::/32',
  'abcd:ef01::1/48',
  '::ffff:1.2.3.4',
  '::ffff:ff00:1',
  '::127.0.0.1',
  '1.2.3.4:80',
  '2001:db8::/32',
  '2001:db8:0:1::5',
  '2001:db8::g',
  ':::',
  '1:2',
  '::ffff:1.2',
];

test('ipaddr: parsing, predicates, isInRange and equality agree with cedar-wasm', () => {
  const r = new Rng(7);
  const lit = (s: string) => JSON.stringify(s);
  const checks: string[] = [];
  IP_CORPUS.forEach((s) => {
    for (const m of ['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast']) checks.push(`ip(${lit(s)}).${m}()`);
  });
  for (let i = 0; i < 250; i++) checks.push(`ip(${lit(r.pick(IP_CORPUS))}).isInRange(ip(${lit(r.pick(IP_CORPUS))}))`);
  // Pairs of addresses that parse, so containment itself is compared (not just errors).
  const valid = IP_CORPUS.filter((s) => typeof parseIp(s) !== 'string');
  for (let i = 0; i < 300; i++) checks.push(`ip(${lit(r.pick(valid))}).isInRange(ip(${lit(r.pick(valid))}))`);
  for (let i = 0; i < 60; i++) checks.push(`ip(${lit(r.pick(valid))}) == ip(${lit(r.pick(valid))})`);
  for (let i = 0; i < 60; i++) checks.push(`ip(${lit(r.pick(IP_CORPUS))}) == ip(${lit(r.pick(IP_CORPUS))})`);
  checks.push(
    'ip("10.0.0.1") == ip("10.0.0.1/32")',
    'ip("::1") == ip("::1/128")',
    'ip("10.0.0.1/24") == ip("10.0.0.0/24")',
    '[ip("1.2.3.4")].contains(ip("1.2.3.4"))',
  );
  checks.push(
    'ip(1).isIpv4()',
    '"1.2.3.4".isIpv4()',
    'ip("1.2.3.4").isInRange("1.2.3.4")',
    'ip("1.2.3.4") has x',
    'ip("1.2.3.4") == "1.2.3.4"',
    'ip(context.s).isLoopback()',
  );
  const text = checks.map((c, i) => `@id("c${i}") permit (principal, action, resource) when { ${c} };`).join('\n');
  const bundle = { policies: { 'ip.cedar': text }, schema: TEST_SCHEMA, entities: [] };
  const fast = new FastAuthorizer(bundle);
  const wasm = new WasmAuthorizer(bundle);
  const req = {
    principal: { type: 'User', id: 'u' },
    action: { type: 'Action', id: 'read' },
    resource: { type: 'Doc', id: 'd' },
    context: { n: 1, s: '127.0.0.1', b: true, tags: [], rec: { b: '' } },
  };
  const f = fast.isAuthorized(req);
  const w = wasm.isAuthorized(req);
  wasm.dispose();
  const byId = (ids: string[]) => new Set(ids.map((e) => e.split(':')[0]));
  const diffs = checks.filter(
    (_c, i) => byId(f.reasons).has(`c${i}`) !== byId(w.reasons).has(`c${i}`) || byId(f.errors).has(`c${i}`) !== byId(w.errors).has(`c${i}`),
  );
  assert.deepEqual(diffs, [], `fast ${JSON.stringify(f).slice(0, 2000)}\nwasm ${JSON.stringify(w).slice(0, 2000)}`);
  assert.equal(disagreement(f, w), '');
  process.stdout.write(`# ipaddr: ${checks.length} checks, ${w.reasons.length} satisfied, ${w.errors.length} errors\n`);
  assert.ok(w.reasons.length > 60 && w.errors.length > 50);
});

export const DECIMAL_CORPUS = [
  '1.0',
  '-1.0',
  '123.456',
  '0.1234',
  '-0.0123',
  '55.1',
  '-922337203685477.5808',
  '922337203685477.5807',
  '922337203685477.5808',
  '-922337203685477.5809',
  '1000000000000000.0',
  '00.000',
  '1234',
  '1.0.',
  '1.',
  '.1',
  '1.a',
  '-.',
  '-0.5',
  '0.5',
  '1.23456',
  '+1.0',
  '１.０',
  ' 1.0',
  '9223372036854775807.0',
  '-0.0',
  '0.0',
  '-0.9999',
  '99999999999999999999.0',
  '1.00000',
];

test('decimal: parsing, comparisons and equality agree with cedar-wasm', () => {
  const r = new Rng(11);
  const lit = (s: string) => JSON.stringify(s);
  const checks: string[] = [];
  for (const s of DECIMAL_CORPUS) checks.push(`decimal(${lit(s)}) == decimal(${lit(s)})`);
  for (let i = 0; i < 300; i++) {
    const m = r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual']);
    checks.push(`decimal(${lit(r.pick(DECIMAL_CORPUS))}).${m}(decimal(${lit(r.pick(DECIMAL_CORPUS))}))`);
  }
  for (let i = 0; i < 60; i++) checks.push(`decimal(${lit(r.pick(DECIMAL_CORPUS))}) == decimal(${lit(r.pick(DECIMAL_CORPUS))})`);
  const valid = DECIMAL_CORPUS.filter((s) => typeof parseDecimal(s) !== 'string');
  for (let i = 0; i < 200; i++) {
    const m = r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual']);
    checks.push(`decimal(${lit(r.pick(valid))}).${m}(decimal(${lit(r.pick(valid))}))`);
  }
  checks.push(
    'decimal("-0.5") == decimal("0.5")',
    'decimal("1.0") < decimal("2.0")',
    'decimal(1).lessThan(decimal("1.0"))',
    'decimal("1.0").lessThan(1)',
    '"1.0".lessThan(decimal("1.0"))',
  );
  checks.push(
    'decimal("1.0") == ip("1.0.0.0")',
    '[decimal("1.0")].contains(decimal("1.00"))',
    'decimal("1.0") has x',
    'decimal(context.s).lessThan(decimal("2.0"))',
  );
  const text = checks.map((c, i) => `@id("d${i}") permit (principal, action, resource) when { ${c} };`).join('\n');
  const bundle = { policies: { 'dec.cedar': text }, schema: TEST_SCHEMA, entities: [] };
  const fast = new FastAuthorizer(bundle);
  const wasm = new WasmAuthorizer(bundle);
  const req = {
    principal: { type: 'User', id: 'u' },
    action: { type: 'Action', id: 'read' },
    resource: { type: 'Doc', id: 'd' },
    context: { n: 1, s: '1.5', b: true, tags: [], rec: { b: '' } },
  };
  const f = fast.isAuthorized(req);
  const w = wasm.isAuthorized(req);
  wasm.dispose();
  const byId = (ids: string[]) => new Set(ids.map((e) => e.split(':')[0]));
  const diffs = checks.filter(
    (_c, i) => byId(f.reasons).has(`d${i}`) !== byId(w.reasons).has(`d${i}`) || byId(f.errors).has(`d${i}`) !== byId(w.errors).has(`d${i}`),
  );
  assert.deepEqual(diffs, []);
  assert.equal(disagreement(f, w), '');
  process.stdout.write(`# decimal: ${checks.length} checks, ${w.reasons.length} satisfied, ${w.errors.length} errors\n`);
  assert.ok(w.reasons.length > 60 && w.errors.length > 50);
});
