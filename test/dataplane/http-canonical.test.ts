// The authority both relays decide on (HTTP/1 Host, HTTP/2 :authority), and canonicalTarget against a reference written the slow, obvious way (every byte
// looked at and re-emitted): the one-pass check that returns an already canonical
// target as it is must give exactly what re-encoding gives, on hand-picked targets
// and on 20,000 seeded random ones drawn from the bytes that matter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalTarget, decidedAuthority, isDecidableHost, splitAuthority } from '../../enforcer/dataplane/protocols/http-canonical.js';

const HEX = '0123456789ABCDEF';
const unreserved = (b: number) =>
  (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e;
const KEEP = "!$&'()*+,;=:@/";

function referenceEncoding(s: string, query: boolean): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const b = s.charCodeAt(i);
    if (b === 0x25) {
      const h = parseInt(s.slice(i + 1, i + 3), 16);
      if (!/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) return null;
      out += unreserved(h) ? String.fromCharCode(h) : `%${HEX[h >> 4]}${HEX[h & 15]}`;
      i += 2;
    } else if (unreserved(b) || KEEP.includes(s[i]) || (query && s[i] === '?')) out += s[i];
    else if (b > 0xff) return null;
    else out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

function reference(target: string): string | null {
  if (!target.startsWith('/') || target.includes('#') || target.includes('\\')) return null;
  const q = target.indexOf('?');
  const path = referenceEncoding(q < 0 ? target : target.slice(0, q), false);
  const query = q < 0 ? '' : referenceEncoding(target.slice(q + 1), true);
  if (path === null || query === null) return null;
  const out: string[] = [];
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    const last = i === segs.length - 1;
    if (segs[i] === '.') {
      if (last) out.push('');
    } else if (segs[i] === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(segs[i]);
  }
  const normal = `/${out.join('/')}`;
  return q < 0 ? normal : `${normal}?${query}`;
}

const actual = (t: string) => {
  const r = canonicalTarget('GET', t);
  return r.ok ? r.path : null;
};

test('canonical targets come back as they are; others are re-encoded exactly as byte-by-byte re-encoding does', () => {
  for (const t of [
    '/',
    '/lilith.test.Echo/Say',
    '/api/v1/items?x=1&y=2',
    "/a!$&'()*+,;=:@/b?c=/d?e",
    '/a%2fb',
    '/a%2Fb',
    '/%7euser',
    '/a b',
    '/a?b c',
    '/a/./b/../c',
    '/a/%2e%2e/b',
    '/caf\u00e9',
    '/a"b<c>',
    '/a?b#c',
    '/%zz',
    '/%4',
  ])
    assert.equal(actual(t), reference(t), t);
  assert.equal(actual('/lilith.test.Echo/Say'), '/lilith.test.Echo/Say');
});

test('20,000 seeded random targets: the same result as the reference', () => {
  const alphabet = [
    'a',
    'Z',
    '0',
    '-',
    '.',
    '_',
    '~',
    '/',
    '?',
    '%',
    '2',
    'e',
    'F',
    ' ',
    '"',
    '!',
    '@',
    ':',
    ';',
    '=',
    '&',
    '+',
    '\u00e9',
    '#',
    '\\',
    '..',
    './',
    '%2e',
    '%2F',
    '%7E',
    '%41',
  ];
  let seed = 17;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 20_000; i++) {
    let t = '/';
    const len = rand(14);
    for (let k = 0; k < len; k++) t += alphabet[rand(alphabet.length)];
    assert.equal(actual(t), reference(t), JSON.stringify(t));
  }
});

test('authorities (Host, :authority): host and port as both relays decide them; the decided authority re-made from them', () => {
  const cases: Array<[string, string | null, string]> = [
    // authority, decided host (null: refused), port
    ['Example.COM', 'example.com', ''],
    ['example.com.', 'example.com', ''],
    ['example.com:8443', 'example.com', '8443'],
    ['example.com:', 'example.com', ''],
    ['[::1]', '::1', ''],
    ['[::1]:443', '::1', '443'],
    ['[::1]:', null, ''],
    ['[::1]x', null, ''],
    ['a:b', 'a:b', ''],
    ['10.0.0.1:80', '10.0.0.1', '80'],
    ['', null, ''],
    ['ex ample.com', null, ''],
    ['user@host', null, ''],
  ];
  for (const [authority, host, port] of cases) {
    const split = splitAuthority(authority);
    assert.equal(isDecidableHost(split.host) ? split.host : null, host, authority);
    if (host !== null) assert.equal(split.port, port, authority);
  }
  assert.equal(decidedAuthority('::1', '443'), '[::1]:443');
  assert.equal(decidedAuthority('example.com', ''), 'example.com');
});
