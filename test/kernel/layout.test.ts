// The byte layouts shared with bpf/src/lilith.h, without a kernel: addresses,
// config encoding, event and original-destination decoding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeEvent,
  decodeOrig,
  decodeUnixKey,
  encodeConfig,
  HOOK_NAMES,
  ip16,
  ipString,
  REASON_NAMES,
  SIZES,
  tupleKey,
  unixKey,
} from '../../bpf/layout.js';
import { kernelDev } from '../../bpf/cgroups.js';

test('IPv4, IPv6 and v4-mapped addresses round-trip through 16 bytes', () => {
  for (const [text, want, fam] of [
    ['10.1.2.3', '10.1.2.3', 4],
    ['::ffff:198.51.100.7', '198.51.100.7', 4],
    ['2001:db8::1', '2001:db8::1', 6],
    ['::1', '::1', 6],
    ['fe80::1:0:0:2', 'fe80::1:0:0:2', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8', 6],
  ] as const) {
    const b = ip16(text);
    assert.equal(b.length, 16);
    assert.deepEqual(ipString(b), { address: want, family: fam }, text);
  }
  assert.deepEqual([...ip16('127.0.0.1')], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1]);
  assert.throws(() => ip16('localhost'), /not an IP address/);
});

test('config encodes to the 64-byte struct with network-order proxy address and family mask', () => {
  const b = encodeConfig({
    heartbeatTtlNs: 1_000_000_000n,
    deniedFamilies: [16, 40],
    proxyV4: '127.0.0.1',
    proxyV6: '::1',
    proxyPort: 15001,
    dnsPort: 15053,
    flags: 7,
    minAddr: 65536,
    interceptCgroupId: 9n,
    interceptLevel: 2,
  });
  assert.equal(b.length, SIZES.config);
  assert.equal(b.readBigUInt64LE(48), 9n);
  assert.equal(b.readUInt32LE(56), 2);
  assert.equal(b.readBigUInt64LE(0), 1_000_000_000n);
  assert.equal(b.readBigUInt64LE(8), (1n << 16n) | (1n << 40n));
  assert.deepEqual([...b.subarray(16, 20)], [127, 0, 0, 1]);
  assert.equal(b.readUInt32LE(20), 7);
  assert.equal(b[39], 1);
  assert.equal(b.readUInt16LE(40), 15001);
  assert.equal(b.readUInt16LE(42), 15053);
  assert.equal(b.readUInt32LE(44), 65536);
  assert.throws(
    () =>
      encodeConfig({
        heartbeatTtlNs: 1n,
        deniedFamilies: [64],
        proxyV4: '127.0.0.1',
        proxyV6: '::1',
        proxyPort: 1,
        dnsPort: 1,
        flags: 0,
        minAddr: 0,
        interceptCgroupId: 1n,
        interceptLevel: 0,
      }),
    /family 64/,
  );
});

test('deny and exec events decode from the 176-byte record', () => {
  const e = Buffer.alloc(SIZES.event);
  e.writeBigUInt64LE(5n, 0);
  e.writeBigUInt64LE(99n, 8);
  e.writeUInt32LE(2, 32); // deny
  e.writeUInt32LE(2, 36); // socket_connect
  e.writeUInt32LE(3, 40); // not_proxy
  e.writeUInt32LE(1234, 44);
  e.writeUInt32LE(1234, 48);
  e.writeUInt32LE(11, 60);
  e.writeUInt32LE(3, 64); // managed | classified
  e.writeUInt16LE(2, 72);
  e.writeUInt16LE(80, 74);
  ip16('10.1.2.3').copy(e, 76);
  e.write('agent', 92);
  const d = decodeEvent(e);
  assert.ok(d && d.kind === 'deny');
  assert.equal(d.hook, 'socket_connect');
  assert.equal(d.reason, 'not_proxy');
  assert.deepEqual(d.destination, { address: '10.1.2.3', family: 4, port: 80 });
  assert.equal(d.identity, 11);
  assert.equal(d.managed && d.classified && !d.jit, true);
  assert.equal(d.comm, 'agent');
  e.writeUInt32LE(1, 32); // exec
  e.writeBigUInt64LE(777n, 16);
  e.write('/usr/bin/agent\0', 108);
  const x = decodeEvent(e);
  assert.ok(x && x.kind === 'exec');
  assert.equal(x.startNs, 777n);
  assert.equal(x.path, '/usr/bin/agent');
  assert.equal(decodeEvent(Buffer.alloc(10)), null);
});

test('original destination and tuple key layouts', () => {
  const o = Buffer.alloc(SIZES.orig);
  ip16('2001:db8::5').copy(o, 0);
  o.writeUInt16LE(443, 16);
  o.writeUInt16LE(10, 18);
  o.writeUInt32LE(42, 24);
  o.writeBigUInt64LE(7n, 40);
  assert.deepEqual(decodeOrig(o), {
    address: '2001:db8::5',
    family: 6,
    port: 443,
    socketFamily: 10,
    pid: 0,
    tgid: 42,
    uid: 0,
    gid: 0,
    identity: 0,
    cgroupId: 7n,
  });
  const k = tupleKey('127.0.0.1', 50000);
  assert.equal(k.length, SIZES.tupleKey);
  assert.equal(k.readUInt16LE(16), 50000);
  assert.deepEqual(tupleKey('::ffff:127.0.0.1', 1), tupleKey('127.0.0.1', 1));
});

test('st_dev converts to the kernel dev_t encoding (major << 20 | minor)', () => {
  assert.equal(kernelDev(0x0801), (8 << 20) | 1); // sda1
  assert.equal(kernelDev(0x00fd0000n | 0x1234n), kernelDev(0x00fd1234));
  assert.equal(kernelDev(259 * 256 + 3), (259 << 20) | 3);
  assert.equal(kernelDev((0x123n << 8n) | 0x45n | ((0x678n << 12n) << 8n)), (0x123 << 20) | 0x67845);
});

test('unix allowlist keys: 116 bytes, length + name zero-padded; pathname and abstract never collide', () => {
  const k = unixKey('/run/nscd/socket');
  assert.equal(k.length, SIZES.unixKey);
  assert.equal(k.readUInt32LE(0), 16);
  assert.equal(k.subarray(4, 20).toString(), '/run/nscd/socket');
  assert.ok(k.subarray(20).every((b) => b === 0));
  assert.equal(decodeUnixKey(k), '/run/nscd/socket');
  const a = unixKey('\0run/nscd/socket');
  assert.equal(a.readUInt32LE(0), 16);
  assert.equal(a[4], 0);
  assert.notDeepEqual(a, unixKey('/run/nscd/socket'));
  assert.equal(decodeUnixKey(a), '\0run/nscd/socket');
  // Length is part of the key: an abstract name padded with NULs is another name.
  assert.notDeepEqual(unixKey('\0x'), unixKey('\0x\0'));
  assert.equal(unixKey('/' + 'p'.repeat(107)).readUInt32LE(0), 108);
  assert.throws(() => unixKey('/' + 'p'.repeat(108)), /109 bytes \(at most 108\)/);
  assert.throws(() => unixKey(''), /non-empty/);
  assert.throws(() => unixKey('\0'), /abstract unix socket name is empty/);
  assert.throws(() => unixKey('/a\0b'), /NUL/);
  assert.throws(() => unixKey(7 as unknown as string), /non-empty string/);
});

test('unix deny events decode with the unix hooks, unix_path reason and the path', () => {
  const e = Buffer.alloc(SIZES.event);
  e.writeUInt32LE(2, 32); // deny
  e.writeUInt32LE(HOOK_NAMES.indexOf('unix_stream_connect'), 36);
  e.writeUInt32LE(REASON_NAMES.indexOf('unix_path'), 40);
  e.writeUInt16LE(1, 72); // AF_UNIX
  e.write('/run/docker.sock\0', 108);
  const d = decodeEvent(e);
  assert.ok(d && d.kind === 'deny');
  assert.equal(d.hook, 'unix_stream_connect');
  assert.equal(d.reason, 'unix_path');
  assert.equal(d.path, '/run/docker.sock');
  assert.equal(d.destination, undefined);
  // enum order in bpf/src/lilith.h
  assert.deepEqual(HOOK_NAMES.slice(14, 18), ['unix_stream_connect', 'unix_may_send', 'connect_unix', 'sendmsg_unix']);
  assert.equal(REASON_NAMES.indexOf('unix_path'), 15);
});

test('guard deny events decode the target process and signal; hook and reason numbers follow bpf/src/lilith.h', () => {
  const e = Buffer.alloc(SIZES.event);
  e.writeUInt32LE(2, 32); // deny
  e.writeUInt32LE(HOOK_NAMES.indexOf('task_kill'), 36);
  e.writeUInt32LE(REASON_NAMES.indexOf('protected_task'), 40);
  e.writeBigUInt64LE(4242n, 16); // target tgid
  e.writeUInt16LE(19, 74); // SIGSTOP
  const d = decodeEvent(e);
  assert.ok(d && d.kind === 'deny');
  assert.equal(d.hook, 'task_kill');
  assert.equal(d.reason, 'protected_task');
  assert.deepEqual(d.target, { tgid: 4242, signal: 19 });
  assert.equal(d.destination, undefined);
  assert.deepEqual(HOOK_NAMES.slice(18), ['ptrace_access_check', 'task_kill', 'file_fcntl', 'file_ioctl']);
  assert.deepEqual(REASON_NAMES.slice(16), ['protected_task', 'file_owner']);
  // Other denials carry no target.
  e.writeUInt32LE(REASON_NAMES.indexOf('file_owner'), 40);
  assert.equal((decodeEvent(e) as { target?: unknown }).target, undefined);
});
