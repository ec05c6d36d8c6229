// `lilith run` end to end: real programs under real Landlock and seccomp on this kernel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ESCAPE_PROBE_BIN } from '../../confine/native.js';
import { cgroup2Root } from '../../confine/cgroup.js';

const CLI = join(process.cwd(), 'dist/cli/main.js');
let work: string;
let policies: string;
let home: string;
let proxy: Server;
let other: Server;
const cgroupBase = `lilith-test-${process.pid}/agents`;

function lilithRun(agent: string, command: string[], extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, 'run', '--standalone', '--policies', policies, '--agent', agent, ...extra, '--', ...command], {
    encoding: 'utf8',
    env: { ...process.env, HOME: home, ...env },
    timeout: 30_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function probe(agent: string, attempt: string, arg?: string) {
  const r = lilithRun(agent, [ESCAPE_PROBE_BIN, attempt, ...(arg ? [arg] : [])]);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as { attempt: string; ok: boolean; errno: number; error: string };
  } catch {
    throw new Error(`probe ${attempt} printed ${JSON.stringify(r.stdout)} stderr ${r.stderr}`);
  }
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
  ];
  writeFileSync(join(policies, 'lilith.json'), JSON.stringify(config, null, 2));
});

after(() => {
  proxy.close();
  other.close();
  rmSync(work, { recursive: true, force: true });
  const root = join(cgroup2Root(), `lilith-test-${process.pid}`);
  for (const dir of [join(root, 'agents', 'tester'), join(root, 'agents', 'strict'), join(root, 'agents', 'stranger'), join(root, 'agents'), root]) {
    try {
      rmdirSync(dir);
    } catch {
      // already gone or never created
    }
  }
});

test('files: writes outside the allowed roots fail, inside succeed', () => {
  const target = join(work, 'workspace', 'ok.txt');
  const r = lilithRun('tester', ['/bin/sh', '-c', `echo in > ${target} && echo wrote-in; echo out > ${join(work, 'outside.txt')} || echo denied-out`]);
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
  for (const attempt of ['ptrace', 'io_uring_setup', 'bpf', 'unshare', 'mount', 'memfd_exec', 'process_vm_readv', 'userfaultfd', 'keyctl', 'perf_event_open', 'raw_socket', 'packet_socket']) {
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
  writeFileSync(script, `import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(join(work, 'workspace', 'node-out.txt'))}, 'from node');
console.log('node', execSync('echo pipeline | tr a-z A-Z | cat').toString().trim());`);
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
  const r = lilithRun('tester', ['/bin/sh', '-c', `sh -c 'cat /proc/self/cgroup; ${ESCAPE_PROBE_BIN} bpf; ${ESCAPE_PROBE_BIN} read ${join(home, '.ssh', 'id_ed25519')}' &
wait $!`]);
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
