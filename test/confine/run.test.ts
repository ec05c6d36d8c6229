// `lilith run` end to end: real programs under real Landlock and seccomp on this kernel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFINE_BIN, ESCAPE_PROBE_BIN } from '../../confine/native.js';
import { cgroup2Root } from '../../confine/cgroup.js';
import { runInPty } from '../../redteam/pty.js';

const CLI = join(process.cwd(), 'dist/cli/main.js');
let work: string;
let policies: string;
let home: string;
let proxy: Server;
let other: Server;
const cgroupBase = `lilith-test-${process.pid}/agents`;

function runArgv(agent: string, command: string[], extra: string[] = []): string[] {
  return [CLI, 'run', '--standalone', '--policies', policies, '--agent', agent, ...extra, '--', ...command];
}

function lilithRun(agent: string, command: string[], extra: string[] = [], env: NodeJS.ProcessEnv = {}, input?: string) {
  const r = spawnSync(process.execPath, runArgv(agent, command, extra), {
    encoding: 'utf8',
    env: { ...process.env, HOME: home, ...env },
    timeout: 30_000,
    input,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

type ProbeResult = { attempt: string; ok: boolean; errno: number; error: string };

function parseProbe(stdout: string, what: string): ProbeResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    throw new Error(`${what} printed ${JSON.stringify(stdout)}`);
  }
}

/** The same probe without any confinement: shows the attempt is real (it works, or fails for another reason). */
function bareProbe(attempt: string, arg?: string): ProbeResult {
  return parseProbe(
    spawnSync(ESCAPE_PROBE_BIN, [attempt, ...(arg ? [arg] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).stdout,
    attempt,
  );
}

function probe(agent: string, attempt: string, arg?: string, env: NodeJS.ProcessEnv = {}) {
  const r = lilithRun(agent, [ESCAPE_PROBE_BIN, attempt, ...(arg ? [arg] : [])], [], env);
  return parseProbe(r.stdout, `probe ${attempt} (stderr ${r.stderr})`);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'lilith-run-'));
  home = join(work, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true });
  writeFileSync(join(home, '.ssh', 'id_ed25519'), 'PRIVATE KEY');
  writeFileSync(join(home, 'notes.txt'), 'notes');
  mkdirSync(join(work, 'workspace'));
  proxy = createServer((s) => s.end('proxy\n')).listen(0, '127.0.0.1');
  other = createServer((s) => s.end('other\n')).listen(0, '127.0.0.1');
  await Promise.all([new Promise((r) => proxy.once('listening', r)), new Promise((r) => other.once('listening', r))]);
  policies = join(work, 'policies');
  cpSync('policies', policies, { recursive: true });
  const config = JSON.parse(readFileSync(join(policies, 'lilith.json'), 'utf8'));
  config.kernel.cgroup_root = cgroupBase;
  config.proxy.listen = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const fs = { read_only: ['/usr', '/lib', '/etc', '/proc', process.cwd()], read_write: [join(work, 'workspace'), home] };
  config.registrations = [
    { spiffe_id: 'spiffe://corp.example/agents/tester', selectors: [`cgroup:/${cgroupBase}/tester`], profile: 'standard', filesystem: fs },
    { spiffe_id: 'spiffe://corp.example/agents/strict', selectors: [`cgroup:/${cgroupBase}/strict`], profile: 'strict', filesystem: fs },
    // May run without Landlock scoping (and only that) where the kernel lacks it.
    {
      spiffe_id: 'spiffe://corp.example/agents/degraded',
      selectors: [`cgroup:/${cgroupBase}/degraded`],
      profile: 'standard',
      filesystem: fs,
      allow_degraded: ['landlock-scope'],
    },
  ];
  writeFileSync(join(policies, 'lilith.json'), JSON.stringify(config, null, 2));
});

after(() => {
  proxy.close();
  other.close();
  rmSync(work, { recursive: true, force: true });
  const root = join(cgroup2Root(), `lilith-test-${process.pid}`);
  for (const dir of [
    join(root, 'agents', 'tester'),
    join(root, 'agents', 'strict'),
    join(root, 'agents', 'stranger'),
    join(root, 'agents', 'degraded'),
    join(root, 'agents'),
    root,
  ]) {
    try {
      rmdirSync(dir);
    } catch {
      // already gone or never created
    }
  }
});

test('files: writes outside the allowed roots fail, inside succeed', () => {
  const target = join(work, 'workspace', 'ok.txt');
  const r = lilithRun('tester', [
    '/bin/sh',
    '-c',
    `echo in > ${target} && echo wrote-in; echo out > ${join(work, 'outside.txt')} || echo denied-out`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote-in/);
  assert.match(r.stdout, /denied-out/);
  assert.equal(readFileSync(target, 'utf8'), 'in\n');
  assert.equal(existsSync(join(work, 'outside.txt')), false);
});

test('files: ~/.ssh stays unreadable although its home directory is read-write', () => {
  assert.equal(probe('tester', 'read', join(home, 'notes.txt')).ok, true);
  const ssh = probe('tester', 'read', join(home, '.ssh', 'id_ed25519'));
  assert.equal(ssh.ok, false);
  assert.equal(ssh.error, 'Permission denied');
});

test('seccomp: escape primitives fail with EPERM', () => {
  for (const attempt of [
    'ptrace',
    'io_uring_setup',
    'bpf',
    'unshare',
    'mount',
    'memfd_exec',
    'process_vm_readv',
    'userfaultfd',
    'keyctl',
    'perf_event_open',
    'raw_socket',
    'packet_socket',
  ]) {
    const r = probe('tester', attempt, attempt === 'mount' ? work : undefined);
    assert.deepEqual([r.attempt, r.ok, r.errno], [attempt, false, 1], `${attempt}: ${r.error}`);
  }
  // The same probes succeed unconfined (the probe is real): bpf map creation and a plain memfd.
  const bare = spawnSync(ESCAPE_PROBE_BIN, ['bpf'], { encoding: 'utf8' });
  assert.match(bare.stdout, /"ok":true/);
  assert.equal(probe('tester', 'memfd').ok, true);
});

test('strict profile: no anonymous executable memory, no inet sockets', () => {
  assert.equal(probe('strict', 'mmap_rwx').errno, 1);
  assert.equal(probe('strict', 'mprotect_exec').errno, 1);
  assert.equal(probe('strict', 'connect', '127.0.0.1:1').errno, 1);
});

test('a Node program and a shell pipeline work under the standard profile', () => {
  const script = join(work, 'workspace', 'agent.mjs');
  writeFileSync(
    script,
    `import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(join(work, 'workspace', 'node-out.txt'))}, 'from node');
console.log('node', execSync('echo pipeline | tr a-z A-Z | cat').toString().trim());`,
  );
  const r = lilithRun('tester', [process.execPath, script]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /node PIPELINE/);
  assert.equal(readFileSync(join(work, 'workspace', 'node-out.txt'), 'utf8'), 'from node');
});

test('network: TCP connect only to the proxy port under Landlock', () => {
  const toProxy = probe('tester', 'connect', `127.0.0.1:${(proxy.address() as AddressInfo).port}`);
  assert.equal(toProxy.ok, true, toProxy.error);
  const toOther = probe('tester', 'connect', `127.0.0.1:${(other.address() as AddressInfo).port}`);
  assert.equal(toOther.ok, false);
  assert.equal(toOther.error, 'Permission denied');
});

test('children inherit the cgroup, seccomp and Landlock', () => {
  const r = lilithRun('tester', [
    '/bin/sh',
    '-c',
    `sh -c 'cat /proc/self/cgroup; ${ESCAPE_PROBE_BIN} bpf; ${ESCAPE_PROBE_BIN} read ${join(home, '.ssh', 'id_ed25519')}' &
wait $!`,
  ]);
  assert.equal(r.code, 1, r.stderr); // the last probe fails
  assert.match(r.stdout, new RegExp(`0::/${cgroupBase}/tester`));
  assert.match(r.stdout, /"attempt":"bpf","ok":false,"errno":1/);
  assert.match(r.stdout, /"attempt":"read","ok":false,"errno":13/);
});

test('unknown agents are refused and never run', () => {
  const marker = join(work, 'workspace', 'stranger-ran');
  const r = lilithRun('stranger', ['/bin/sh', '-c', `touch ${marker}`]);
  assert.equal(r.code, 126);
  assert.match(r.stderr, /refused: no registration matches/);
  assert.equal(existsSync(marker), false);
});

test('exit codes and signals pass through', () => {
  assert.equal(lilithRun('tester', ['/bin/sh', '-c', 'exit 7']).code, 7);
  assert.equal(lilithRun('tester', ['/bin/sh', '-c', 'kill -TERM $$']).code, 128 + 15);
  assert.match(lilithRun('tester', ['/bin/sh', '-c', 'cat'], [], {}).stdout, /^$/);
});

test('bad input: unknown profile and missing command are usage errors', () => {
  const r1 = spawnSync(process.execPath, [CLI, 'run', '--profile', 'lax', '--', 'true'], { encoding: 'utf8' });
  assert.equal(r1.status, 2);
  assert.match(r1.stderr, /--profile must be/);
  const r2 = spawnSync(process.execPath, [CLI, 'run', '--standalone'], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /missing -- COMMAND/);
});

const EPERM = 1;
const rootOnly = { skip: process.getuid?.() !== 0 ? 'needs root' : false };

test('terminal: an agent on a real pty cannot push input into the invoking shell (TIOCSTI)', async () => {
  const marker = 'echo INJECTED-BY-AGENT';
  // Unconfined, the same probe on the same kind of terminal does inject: the shell would run the marker.
  const bare = await runInPty([ESCAPE_PROBE_BIN, 'tiocsti', marker]);
  assert.equal(bare.typed, `${marker}\n`, bare.output);
  for (const attempt of ['tiocsti', 'tiocsti_hibits']) {
    const r = await runInPty([process.execPath, ...runArgv('tester', [ESCAPE_PROBE_BIN, attempt, marker])], { ...process.env, HOME: home });
    assert.equal(r.typed, '', `${attempt}: the shell read ${JSON.stringify(r.typed)}\n${r.output}`);
    assert.match(r.output, new RegExp(`"attempt":"${attempt}","ok":false,"errno":${EPERM}`), r.output);
  }
  const linux = await runInPty([process.execPath, ...runArgv('tester', [ESCAPE_PROBE_BIN, 'tioclinux'])], { ...process.env, HOME: home });
  assert.match(linux.output, /"attempt":"tioclinux","ok":false,"errno":1,/, linux.output);
});

test('terminal: the agent has no controlling terminal, yet its stdio still works on a tty and in pipes', async () => {
  const script = 'test -t 0 && test -t 1 && echo STDIO-IS-TTY; (: >/dev/tty) 2>/dev/null || echo NO-CTTY; exit 5';
  const r = await runInPty([process.execPath, ...runArgv('tester', ['/bin/sh', '-c', script])], { ...process.env, HOME: home });
  assert.equal(r.exit, 5, r.output);
  assert.match(r.output, /STDIO-IS-TTY/);
  assert.match(r.output, /NO-CTTY/);
  // Unconfined the same shell has one.
  const bare = await runInPty(['/bin/sh', '-c', ': > /dev/tty && echo HAS-CONTROLLING-TTY']);
  assert.match(bare.output, /HAS-CONTROLLING-TTY/);
  const piped = lilithRun('tester', ['/bin/sh', '-c', 'tr a-z A-Z; exit 3'], [], {}, 'through the pipe\n');
  assert.equal(piped.code, 3, piped.stderr);
  assert.equal(piped.stdout, 'THROUGH THE PIPE\n');
  // Not a terminal at all: the kernel would say ENOTTY, the seccomp filter says EPERM first.
  assert.equal(bareProbe('tiocsti').errno, 25);
  assert.equal(probe('tester', 'tiocsti').errno, EPERM);
  assert.equal(probe('strict', 'tiocsti').errno, EPERM);
});

test('signals sent to lilith run reach the agent in its own session', async () => {
  for (const [sig, script, expected] of [
    ['SIGINT', 'trap "echo got-int; exit 42" INT', 42],
    ['SIGTERM', 'true', 128 + 15],
  ] as const) {
    const child = spawn(process.execPath, runArgv('tester', ['/bin/sh', '-c', `${script}; echo ready; while :; do sleep 0.1; done`]), {
      env: { ...process.env, HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += String(c)));
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    const deadline = Date.now() + 20_000;
    while (!out.includes('ready') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill(sig);
    const [code] = await exited;
    assert.equal(code, expected, `${sig}: ${out}`);
    if (sig === 'SIGINT') assert.match(out, /got-int/);
  }
});

test('capabilities: an agent started as root holds none, in any set', rootOnly, () => {
  const bare = bareProbe('caps');
  assert.equal(bare.ok, true, 'root holds capabilities unconfined: the probe is real');
  for (const agent of ['tester', 'strict']) {
    const r = probe(agent, 'caps');
    assert.equal(r.ok, false, `${agent}: ${r.error}`);
    for (const set of ['Inh', 'Prm', 'Eff', 'Bnd', 'Amb'])
      assert.match(r.error, new RegExp(`Cap${set}=0000000000000000`), `${agent}: ${r.error}`);
  }
  // What that means: still uid 0, but no CAP_CHOWN.
  const file = join(work, 'workspace', 'owned');
  writeFileSync(file, 'x');
  const r = lilithRun('tester', ['/bin/sh', '-c', `id -u; chown 4242 ${file} || echo chown-denied`]);
  assert.match(r.stdout, /^0\n/);
  assert.match(r.stdout, /chown-denied/);
  assert.equal(statSync(file).uid, 0);
});

test('device nodes: mknod of a character device fails with EPERM in every profile; FIFOs only outside strict', rootOnly, () => {
  const dev = join(work, 'workspace', 'null-clone');
  assert.equal(bareProbe('mknod_chr', dev).ok, true, 'root can make device nodes unconfined: the probe is real');
  assert.equal(lstatSync(dev).isCharacterDevice(), true);
  rmSync(dev);
  for (const agent of ['tester', 'strict']) {
    for (const attempt of ['mknod_chr', 'mknod_legacy_chr']) {
      const r = probe(agent, attempt, dev);
      assert.deepEqual([r.ok, r.errno], [false, EPERM], `${agent} ${attempt}: ${r.error}`);
      assert.equal(existsSync(dev), false);
    }
  }
  const fifo = join(work, 'workspace', 'fifo');
  assert.equal(probe('tester', 'mkfifo', fifo).ok, true);
  assert.equal(lstatSync(fifo).isFIFO(), true);
  assert.equal(probe('strict', 'mkfifo', join(work, 'workspace', 'fifo2')).errno, EPERM);
});

test('netlink: only NETLINK_ROUTE; NETLINK_NETFILTER (nftables) fails with EPERM', () => {
  const NETLINK_NETFILTER = '12';
  const NETLINK_ROUTE = '0';
  assert.equal(bareProbe('netlink', NETLINK_NETFILTER).ok, true, 'unconfined the socket opens: the probe is real');
  for (const attempt of ['netlink', 'netlink_raw']) {
    assert.deepEqual([probe('tester', attempt, NETLINK_NETFILTER).errno], [EPERM], attempt);
    assert.equal(probe('tester', attempt, NETLINK_ROUTE).ok, true, attempt);
  }
  for (const other of ['9' /* audit */, '15' /* kobject uevent */, '6' /* xfrm */])
    assert.equal(probe('tester', 'netlink', other).errno, EPERM, other);
  assert.equal(probe('strict', 'netlink', NETLINK_ROUTE).errno, EPERM);
  // glibc's getifaddrs (Node's os.networkInterfaces) uses NETLINK_ROUTE and keeps working.
  const r = lilithRun('tester', [process.execPath, '-e', "console.log(Object.keys(require('os').networkInterfaces()).includes('lo'))"]);
  assert.equal(r.stdout.trim(), 'true', r.stderr);
});

test('socket protocols: inet sockets only for TCP, UDP and MPTCP; SCTP, DCCP, UDP-Lite, ping and inet socketpairs fail with EPERM', () => {
  // Unconfined the kernel goes on to look for the protocol (EPROTONOSUPPORT/ESOCKTNOSUPPORT after a module
  // autoload, or a socket): only seccomp's EPERM at syscall entry means the filter stopped it first.
  assert.notEqual(bareProbe('socket_proto', '132').errno, EPERM, 'SCTP unconfined: not an EPERM');
  for (const [attempt, proto] of [
    ['socket_proto', '132' /* SCTP */],
    ['socket_proto', '33' /* DCCP */],
    ['socket_proto', '255' /* IPPROTO_RAW on a stream socket */],
    ['socket_proto_dgram', '136' /* UDP-Lite */],
    ['socket_proto_dgram', '1' /* ICMP: a ping socket */],
    ['socketpair_inet', '132'],
  ] as const) {
    const r = probe('tester', attempt, proto);
    assert.deepEqual([r.ok, r.errno], [false, EPERM], `${attempt} ${proto}: ${r.error}`);
  }
  for (const [attempt, proto] of [
    ['socket_proto', '0'],
    ['socket_proto', '6' /* TCP */],
    ['socket_proto', '262' /* MPTCP */],
    ['socket_proto_dgram', '0'],
    ['socket_proto_dgram', '17' /* UDP */],
  ] as const)
    assert.equal(probe('tester', attempt, proto).ok, true, `${attempt} ${proto}`);
});

test('other ABIs: a syscall through the i386 entry (int $0x80) kills the agent instead of reaching the kernel', () => {
  // Unconfined, the ia32 socket() reaches the kernel (EPROTONOSUPPORT for SCTP without its module, or a socket).
  const bare = bareProbe('ia32_socket');
  assert.doesNotMatch(bare.error, /killed/, 'unconfined the ia32 entry answers: the probe is real');
  // (The probe forks for it: the strict profile, which forbids fork, is the same filter for this.)
  for (const attempt of ['ia32_socket', 'ia32_tiocsti']) {
    const r = probe('tester', attempt, 'id');
    assert.deepEqual([r.ok, r.error], [false, 'killed by signal 31 (Bad system call)'], attempt);
  }
});

test('no silent downgrade: a Landlock layer this kernel lacks refuses the agent unless allow_degraded lists it', () => {
  const marker = join(work, 'workspace', 'degraded-ran');
  const older = { LILITH_TEST_LANDLOCK_ABI: '5' }; // test hook: the kernel looks like Landlock ABI 5 (no scoping)
  const refused = lilithRun('tester', ['/bin/sh', '-c', `touch ${marker}`], [], older);
  assert.equal(refused.code, 126, refused.stderr);
  assert.match(
    refused.stderr,
    /refused: this kernel cannot apply landlock-scope \(Landlock ABI 5 < 6: no abstract unix socket or signal scoping\)/,
  );
  assert.match(refused.stderr, /allow_degraded/);
  assert.equal(existsSync(marker), false);

  // Allowed: it runs, says so in one line without --verbose, and scoping really is off (a signal leaves the sandbox).
  const allowed = lilithRun('degraded', [ESCAPE_PROBE_BIN, 'kill', String(process.pid)], [], older);
  assert.equal(allowed.code, 0, allowed.stderr);
  const warnings = allowed.stderr.split('\n').filter((l) => /DEGRADED/.test(l));
  assert.equal(warnings.length, 1, allowed.stderr);
  assert.match(warnings[0], /^lilith: warning: agent spiffe:\/\/corp.example\/agents\/degraded runs DEGRADED .*without landlock-scope/);
  assert.match(allowed.stdout, /"attempt":"kill","ok":true/);
  // On the real kernel the same agent runs fully confined, silently: the signal is refused.
  const full = lilithRun('degraded', [ESCAPE_PROBE_BIN, 'kill', String(process.pid)]);
  assert.doesNotMatch(full.stderr, /DEGRADED/);
  assert.match(full.stdout, /"attempt":"kill","ok":false,"errno":1,/);

  // No Landlock at all is more than scoping: still refused, naming it.
  const none = lilithRun('degraded', ['/bin/sh', '-c', `touch ${marker}`], [], { LILITH_TEST_LANDLOCK_ABI: '0' });
  assert.equal(none.code, 126);
  assert.match(none.stderr, /cannot apply landlock \(no Landlock on this kernel/);
  assert.equal(existsSync(marker), false);
});

test('no silent downgrade: the helper refuses on its own when called without lilith run', () => {
  const abi3 = { ...process.env, LILITH_TEST_LANDLOCK_ABI: '3' };
  const r = spawnSync(CONFINE_BIN, ['--ro', '/usr', '--scope', '--', '/bin/true'], { encoding: 'utf8', env: abi3 });
  assert.equal(r.status, 126);
  assert.match(r.stderr, /cannot apply landlock-truncate|cannot apply landlock-net/);
  assert.match(r.stderr, /landlock-scope/);
  const ok = spawnSync(
    CONFINE_BIN,
    [
      '--ro',
      '/usr',
      '--ro',
      '/lib',
      '--scope',
      '--allow-degraded',
      'landlock-net',
      '--allow-degraded',
      'landlock-ioctl-dev',
      '--allow-degraded',
      'landlock-scope',
      '--',
      '/bin/true',
    ],
    { encoding: 'utf8', env: abi3 },
  );
  assert.equal(ok.status, 0, ok.stderr);
  // The hook only lowers: it cannot claim more than the kernel has.
  const abi = JSON.parse(
    spawnSync(CONFINE_BIN, ['--abi'], { encoding: 'utf8', env: { ...process.env, LILITH_TEST_LANDLOCK_ABI: '99' } }).stdout,
  );
  assert.equal(abi.landlock_abi, JSON.parse(spawnSync(CONFINE_BIN, ['--abi'], { encoding: 'utf8' }).stdout).landlock_abi);
  assert.equal(abi.seccomp, true);
});
