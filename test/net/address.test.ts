import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHostPort } from '../../net/address.js';

test('parseHostPort: IPv4, names and bracketed IPv6', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:7890'), { host: '127.0.0.1', port: 7890 });
  assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 });
  assert.deepEqual(parseHostPort('[::1]:53'), { host: '::1', port: 53 });
  assert.deepEqual(parseHostPort('[fe80::1%eth0]:65535'), { host: 'fe80::1%eth0', port: 65535 });
});

test('parseHostPort: refuses what is not host:port', () => {
  for (const bad of ['127.0.0.1', ':80', '127.0.0.1:', '::1:53', '[::1]', '[::1]53', 'host:99999', 'host:8o', 'host:80 ', '']) {
    assert.throws(() => parseHostPort(bad), /expected host:port or \[v6\]:port/, bad);
  }
});

test('parseHostPort: the error names the setting', () => {
  assert.throws(() => parseHostPort('nope', 'proxy.listen'), /^Error: proxy\.listen: expected host:port or \[v6\]:port, got 'nope'$/);
  assert.throws(() => parseHostPort('nope'), /^Error: expected host:port/);
});
