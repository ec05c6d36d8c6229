// The kernel plan: what a capsule's config puts in the kernel maps, checked as plain
// data without a kernel (no root, no BPF). The I/O half (exec closures by inode) is
// checked once against this very node binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync, statSync } from 'node:fs';
import type { LilithConfig } from '../../capsule/config.js';
import { resolveExecPrograms, type ExecProgram } from '../../enforcer/kernel/exec-inodes.js';
import { identityNumber, planKernel, type KernelPlanInput } from '../../enforcer/kernel/plan.js';

type PlanConfig = KernelPlanInput['config'];

interface ConfigOverrides {
  proxy?: Partial<LilithConfig['proxy']>;
  kernel?: Partial<LilithConfig['kernel']>;
  registrations?: LilithConfig['registrations'];
}

function config(over: ConfigOverrides = {}): PlanConfig {
  return {
    proxy: {
      listen: '127.0.0.1:7890',
      dns_listen: '127.0.0.1:7853',
      admin_listen: '127.0.0.1:7891',
      max_header_bytes: 65536,
      max_body_bytes: 1048576,
      idle_timeout_ms: 30000,
      ...over.proxy,
    },
    kernel: { cgroup_root: 'lilith/agents', heartbeat_interval_ms: 250, heartbeat_ttl_ms: 1000, ...over.kernel },
    registrations: over.registrations ?? [],
  };
}

const plan = (cfg: PlanConfig, execPrograms: ExecProgram[] = []) =>
  planKernel({ config: cfg, cgroupMount: '/sys/fs/cgroup', execPrograms });

test('proxy addresses, cgroup path and heartbeat come from the config', () => {
  const p = plan(config({ proxy: { listen6: '[::1]:7890' } }));
  assert.equal(p.cgroupPath, '/sys/fs/cgroup/lilith/agents');
  assert.deepEqual(p.proxy, { address: '127.0.0.1', port: 7890, dnsPort: 7853, address6: '::1' });
  assert.deepEqual(p.heartbeat, { ttlMs: 1000, intervalMs: 250 });
  assert.deepEqual(p.deniedFamilies, []);
  assert.deepEqual(p.unixAllowlist, []);
  assert.deepEqual(p.exec, []);
  assert.deepEqual(p.identities, []);
  assert.deepEqual(p.warnings, []);
});

test('without listen6 the plan names no IPv6 proxy address', () => {
  assert.equal('address6' in plan(config()).proxy, false);
});

test('a heartbeat interval below 10 ms is raised to 10 ms; the TTL is kept as given', () => {
  assert.deepEqual(plan(config({ kernel: { heartbeat_interval_ms: 1, heartbeat_ttl_ms: 50 } })).heartbeat, { ttlMs: 50, intervalMs: 10 });
});

test('socket families are named case-insensitively and map to AF_* numbers', () => {
  const p = plan(config({ kernel: { deny_socket_families: ['af_packet', 'AF_NETLINK', 'AF_LOCAL', 'af_vsock'] } }));
  assert.deepEqual(p.deniedFamilies, [17, 16, 1, 40]);
});

test('an unknown socket family or a malformed address refuses the plan', () => {
  assert.throws(() => plan(config({ kernel: { deny_socket_families: ['AF_INET9'] } })), /unknown family AF_INET9/);
  assert.throws(
    () => plan(config({ proxy: { listen: 'localhost' } })),
    /proxy\.listen: expected host:port or \[v6\]:port, got 'localhost'/,
  );
  assert.throws(() => plan(config({ proxy: { dns_listen: '127.0.0.1' } })), /proxy\.dns_listen/);
});

test('the unix allowlist is kept in order, once per path', () => {
  const p = plan(config({ kernel: { unix_allowlist: ['/run/nscd/socket', '\u0000abstract', '/run/nscd/socket'] } }));
  assert.deepEqual(p.unixAllowlist, ['/run/nscd/socket', '\u0000abstract']);
});

test('exec entries: one per inode across programs; unreadable programs and files become warnings', () => {
  const programs: ExecProgram[] = [
    {
      path: '/usr/bin/python3',
      missing: [],
      files: [
        { file: '/usr/bin/python3.12', dev: 2049n, ino: 11n },
        { file: '/lib/ld.so', dev: 2049n, ino: 12n },
      ],
    },
    {
      path: '/usr/bin/git',
      missing: ['libpcre2-8.so.0'],
      files: [
        { file: '/usr/bin/git', dev: 2049n, ino: 21n },
        { file: '/lib/ld.so', dev: 2049n, ino: 12n },
      ],
    },
    { path: '/opt/gone', error: 'ENOENT: no such file or directory' },
    {
      path: '/usr/bin/node',
      missing: [],
      files: [
        { file: '/usr/bin/node', dev: 2050n, ino: 11n },
        { file: '/lib/libgone.so', error: 'EACCES' },
      ],
    },
  ];
  const p = plan(config(), programs);
  assert.deepEqual(p.exec, [
    { key: '2049:11', dev: 2049n, ino: 11n },
    { key: '2049:12', dev: 2049n, ino: 12n },
    { key: '2049:21', dev: 2049n, ino: 21n },
    { key: '2050:11', dev: 2050n, ino: 11n },
  ]);
  assert.deepEqual(p.warnings, [
    'exec_allowlist: /usr/bin/git needs libpcre2-8.so.0, not found (it will not start)',
    'exec_allowlist: /opt/gone: ENOENT: no such file or directory (skipped)',
    'exec_allowlist: /lib/libgone.so (for /usr/bin/node): EACCES (skipped)',
  ]);
});

test('cgroup selectors become identities under the cgroup mount; other selectors do not', () => {
  const p = plan(
    config({
      registrations: [
        { spiffe_id: 'spiffe://example.org/agent/a', selectors: ['cgroup:lilith/agents/a', 'unix:uid:1000'] },
        { spiffe_id: 'spiffe://example.org/agent/b', selectors: ['unix:path:/usr/bin/node'], jit: true },
        { spiffe_id: 'spiffe://example.org/agent/c', selectors: ['cgroup:/lilith/agents/c'], jit: true },
      ],
    }),
  );
  assert.deepEqual(p.identities, [
    { cgroup: '/sys/fs/cgroup/lilith/agents/a', id: identityNumber('spiffe://example.org/agent/a'), jit: false },
    { cgroup: '/sys/fs/cgroup/lilith/agents/c', id: identityNumber('spiffe://example.org/agent/c'), jit: true },
  ]);
});

test('a cgroup named by two registrations gets the later one', () => {
  const p = plan(
    config({
      registrations: [
        { spiffe_id: 'spiffe://example.org/first', selectors: ['cgroup:lilith/agents/x'] },
        { spiffe_id: 'spiffe://example.org/second', selectors: ['cgroup:lilith/agents/x'], jit: true },
      ],
    }),
  );
  assert.deepEqual(p.identities, [
    { cgroup: '/sys/fs/cgroup/lilith/agents/x', id: identityNumber('spiffe://example.org/second'), jit: true },
  ]);
});

test('identity numbers are FNV-1a of the SPIFFE ID, never 0', () => {
  assert.equal(identityNumber(''), 0x811c9dc5);
  assert.equal(identityNumber('a'), 0xe40c292c);
  assert.equal(identityNumber('foobar'), 0xbf9cf968);
  const n = identityNumber('spiffe://example.org/agent/a');
  assert.ok(Number.isInteger(n) && n > 0 && n <= 0xffffffff);
  assert.notEqual(n, identityNumber('spiffe://example.org/agent/b'));
});

test('resolveExecPrograms: a real program resolves to inodes the plan allowlists; a missing one is a warning', () => {
  const programs = resolveExecPrograms([process.execPath, '/nonexistent/lilith-plan-test']);
  const p = plan(config(), programs);
  const self = statSync(realpathSync(process.execPath), { bigint: true });
  assert.ok(
    p.exec.some((e) => e.dev === self.dev && e.ino === self.ino),
    'the node binary itself is allowlisted',
  );
  assert.equal(p.warnings.filter((w) => w.startsWith('exec_allowlist: /nonexistent/lilith-plan-test: ')).length, 1);
  assert.deepEqual(resolveExecPrograms([]), []);
});

test('per-registration exec allowlists: entries keyed by the identity, apart from the shared list', () => {
  const coder = 'spiffe://corp.example/agents/coder';
  const reader = 'spiffe://corp.example/agents/reader';
  const git: ExecProgram = {
    path: '/usr/bin/git',
    missing: [],
    files: [
      { file: '/usr/bin/git', dev: 2049n, ino: 21n },
      { file: '/lib/ld.so', dev: 2049n, ino: 12n },
    ],
  };
  const p = planKernel({
    config: config(),
    cgroupMount: '/sys/fs/cgroup',
    execPrograms: [{ path: '/usr/bin/cat', missing: [], files: [{ file: '/usr/bin/cat', dev: 2049n, ino: 31n }] }],
    identityExecPrograms: [
      { spiffeId: coder, programs: [git, { path: '/opt/gone', error: 'ENOENT' }] },
      { spiffeId: reader, programs: [] },
    ],
  });
  const id = identityNumber(coder);
  assert.deepEqual(p.exec, [{ key: '2049:31', dev: 2049n, ino: 31n }], 'the shared list is unchanged');
  assert.deepEqual(p.identityExec, [
    { key: `${id}/2049:21`, dev: 2049n, ino: 21n, identity: id },
    { key: `${id}/2049:12`, dev: 2049n, ino: 12n, identity: id },
  ]);
  assert.ok(!p.identityExec.some((e) => e.identity === identityNumber(reader)), 'the reader gets nothing of the coder’s');
  assert.deepEqual(p.warnings, [`${coder}: exec_allowlist: /opt/gone: ENOENT (skipped)`]);
});
