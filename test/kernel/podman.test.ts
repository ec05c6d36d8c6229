// A real container: podman (runc; crun refuses this host's hybrid cgroups)
// runs a busybox-static rootfs built here, in a network namespace of this test
// (veth to the host), with its cgroup below the managed agent cgroup
// (--cgroup-parent), so Lilith's cgroup programs apply to it as to any
// container on a node. The container's wget to the host's loopback HTTP server
// is redirected to the node proxy address, decided by a registration that
// names the container by `docker:id` (from the cgroup path libpod-<id>) and
// `docker:label` (from the metadata directory, written from `podman inspect`
// as a runtime hook would), and audited; a second container of the same rootfs
// matches only the plain cgroup registration.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { basename, join } from 'node:path';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { attach, type Kernel } from '../../bpf/index.js';
import { makeCgroup, makePinRoot, repoRoot, sleep, type TestCgroup } from '../../testkit/kernel.js';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import { KernelOriginResolver } from '../../enforcer/dataplane/origin.js';
import { startDataplane, type Dataplane } from '../../enforcer/dataplane/dataplane.js';
import { createAgentNetns, ensureNodeAddress, removeNodeAddress, type AgentNetns } from '../../confine/netns.js';
import { MutableSnapshots, snapshotFromDir, testPolicyDir } from '../dataplane/helpers.js';
import { startHttpUpstream } from '../dataplane/upstreams.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);

const which = (bin: string): string | null => {
  for (const d of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) if (existsSync(join(d, bin))) return join(d, bin);
  return null;
};

let skip: string | false = false;
let kernel: Kernel | undefined;
let agent: TestCgroup | undefined;
let ns: AgentNetns | undefined;
let nodeAddress = '';
let addedAddress = false;
let dp: Dataplane | undefined;
let audit: FileAuditSink | undefined;
let auditPath = '';
let dir = '';
let work = '';
let httpPort = 0;
let closeUpstream: (() => Promise<void>) | undefined;
let hostListener: Server | undefined;
let hostPort = 0;
let hostHits = 0;
const containers: string[] = [];
/** The labelled container (registration by docker:id + docker:label) and a plain one of the same rootfs. */
let labelled = '';
let plain = '';

/**
 * podman with what this host needs: runc, and ulimits below the host's hard
 * limits (podman's defaults exceed them). The container joins the test's
 * namespace and a cgroup below the managed agent cgroup.
 */
function podmanCreate(name: string, labels: string[], argv: string[]): string {
  const out = execFileSync(
    'podman',
    [
      '--runtime',
      'runc',
      'create',
      '--name',
      name,
      '--ulimit',
      'nofile=1024:20000',
      '--ulimit',
      'nproc=1000:1000',
      '--network',
      `ns:${ns!.path}`,
      '--cgroup-parent',
      `/${basename(agent!.dir)}`,
      ...labels.flatMap((l) => ['--label', l]),
      '--rootfs',
      join(work, 'rootfs'),
      ...argv,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  ).trim();
  const id = out.split('\n').at(-1)!;
  containers.push(id);
  return id;
}

/** Runs a created container to completion; its output and exit code. */
async function podmanStart(id: string): Promise<{ out: string; code: number }> {
  return run('podman', ['--runtime', 'runc', 'start', '--attach', id], { timeout: 60_000 }).then(
    (r) => ({ out: r.stdout + r.stderr, code: 0 }),
    (e: { stdout?: string; stderr?: string; code?: number }) => ({ out: (e.stdout ?? '') + (e.stderr ?? ''), code: e.code ?? -1 }),
  );
}

before(async () => {
  if (process.getuid?.() !== 0) {
    skip = 'needs root (cgroup BPF, network namespaces, podman)';
    return;
  }
  const missing = ['podman', 'runc', 'busybox'].filter((b) => !which(b));
  if (missing.length) {
    skip = `${missing.join(', ')} not installed (scripts/apt-packages.txt lists podman, runc, busybox-static)`;
    return;
  }
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'ignore' });
  work = mkdtempSync(join(tmpdir(), 'lilith-podman-'));
  // The image: busybox-static and the names it answers to.
  const rootfs = join(work, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'wget', 'nc', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');

  nodeAddress = `169.254.77.${100 + ((process.pid + 77) % 150)}`;
  addedAddress = ensureNodeAddress(nodeAddress);
  ns = createAgentNetns(`lpd${(process.pid % 100000).toString(36)}`);
  agent = makeCgroup();

  const up = await startHttpUpstream();
  closeUpstream = () => up.close();
  httpPort = up.port;
  // No wget -T: busybox 1.35's wget crashes with it (also on the host). podmanStart bounds the wait.
  const url = `http://localhost:${httpPort}`;
  // The labelled container asks for an allowed and a denied path; the plain one for the denied path only.
  labelled = podmanCreate(
    `lil-lab-${process.pid}`,
    ['app=reader'],
    ['/bin/sh', '-c', `wget -q -O - ${url}/hello; echo " rc=$?"; wget -q -O - ${url}/secret/report; echo " rc=$?"`],
  );
  // The plain one also tries the host side of its veth directly (a listener on every host address).
  hostListener = createServer((c) => {
    hostHits++;
    c.end('host\n');
  });
  await new Promise<void>((r) => hostListener!.listen(0, '0.0.0.0', r));
  hostPort = (hostListener.address() as { port: number }).port;
  plain = podmanCreate(
    `lil-plain-${process.pid}`,
    [],
    ['/bin/sh', '-c', `wget -q -O - ${url}/secret/report; echo " rc=$?"; echo hi | nc ${ns.hostAddress} ${hostPort}; echo " nc=$?"`],
  );

  // The metadata directory as a runtime hook fills it: the container's labels from podman itself.
  const workloads = join(work, 'workloads');
  mkdirSync(join(workloads, 'containers'), { recursive: true });
  for (const id of containers) {
    const [info] = JSON.parse(execFileSync('podman', ['inspect', id], { encoding: 'utf8' })) as [
      { Name: string; Config: { Labels: Record<string, string> | null } },
    ];
    writeFileSync(join(workloads, 'containers', `${id}.json`), JSON.stringify({ name: info.Name, labels: info.Config.Labels ?? {} }));
  }

  const cgPath = `/${basename(agent.dir)}`;
  dir = await testPolicyDir({
    config: (c) => {
      c.registrations = c.registrations
        .filter((r) => !r.spiffe_id.endsWith('/coder/node'))
        .map((r) => (r.spiffe_id.endsWith('/coder') ? { ...r, selectors: [`cgroup:${cgPath}`] } : r))
        // The reader: these containers by their podman id (cgroup path) and label (metadata).
        .map((r) =>
          r.spiffe_id.endsWith('/reader')
            ? { ...r, selectors: [`cgroup:${cgPath}`, `docker:id:${labelled}`, 'docker:label:app:reader'] }
            : r,
        );
    },
    policies: {
      'containers.cedar':
        '@id("readers-no-secret")\nforbid (principal in AgentGroup::"readers", action == Action::"GET", resource)\nwhen { context.path like "/secret*" };\n',
    },
  });
  auditPath = join(dir, 'audit.jsonl');
  audit = new FileAuditSink(auditPath);
  const kernelRef: { k?: Kernel } = {};
  dp = await startDataplane({
    snapshots: new MutableSnapshots(await snapshotFromDir(dir)),
    origin: new KernelOriginResolver(
      { originalDestination: (peer) => kernelRef.k?.originalDestination(peer) ?? null },
      { workloadDir: workloads },
    ),
    audit,
    listen: { proxy: [`${nodeAddress}:0`], dns: `${nodeAddress}:0` },
    dnsUpstream: '127.0.0.1:9',
  });
  kernel = await attach({
    cgroupPath: agent.dir,
    pinRoot: makePinRoot(),
    mode: 'cgroup-only',
    proxy: { address: nodeAddress, port: dp.proxyAddresses[0].port, dnsPort: dp.dnsAddress!.port },
  });
  kernelRef.k = kernel;
  kernel.registerIdentity({ cgroup: agent.dir }, 7);
  kernel.startHeartbeat();
});

after(async () => {
  for (const id of containers)
    try {
      execFileSync('podman', ['--runtime', 'runc', 'rm', '-f', id], { stdio: 'ignore', timeout: 30_000 });
    } catch {}
  kernel?.detachAll();
  agent?.remove();
  // runc on this hybrid host also makes the parent in every v1 hierarchy (and conmon's cgroup below it).
  if (agent) removeV1Parents(basename(agent.dir));
  ns?.remove();
  if (addedAddress) removeNodeAddress(nodeAddress);
  const bounded = (p: Promise<unknown> | undefined) => Promise.race([p, sleep(2000)]);
  await bounded(dp?.close());
  await bounded(audit?.close());
  await bounded(closeUpstream?.());
  hostListener?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (work) rmSync(work, { recursive: true, force: true });
});

function removeV1Parents(name: string): void {
  const root = '/sys/fs/cgroup';
  for (const h of readdirSync(root)) {
    const d = join(root, h, name);
    if (h === 'unified' || !existsSync(d)) continue;
    for (const c of readdirSync(d, { withFileTypes: true }))
      if (c.isDirectory())
        try {
          rmdirSync(join(d, c.name));
        } catch {}
    try {
      rmdirSync(d);
    } catch {}
  }
}

async function events(): Promise<DecisionAuditEvent[]> {
  await audit!.flush();
  return (await readFile(auditPath, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DecisionAuditEvent);
}

test('podman: a real container in a test namespace is redirected to the node proxy and decided by its docker: selectors', {
  timeout: 120_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const started = Date.now();
  const reader = await podmanStart(labelled);
  const other = await podmanStart(plain);
  t.diagnostic(`two podman starts in ${Date.now() - started} ms`);
  assert.match(reader.out, /^hello GET \/hello rc=0\n/, `labelled container, allowed GET: ${reader.out}`);
  assert.match(reader.out, /^ rc=1$/m, `labelled container, denied GET fails: ${reader.out}`);
  assert.match(reader.out, /server returned error: HTTP\/1.1 403 Forbidden/, reader.out);
  assert.match(other.out, /^hello GET \/secret\/report rc=0$/m, `unlabelled container (coder by cgroup): ${other.out}`);
  assert.ok(!/host/.test(other.out.replace(/hello GET/, '')), `the host listener answered the container: ${other.out}`);
  assert.equal(hostHits, 0, 'a connection from the container reached the host listener');

  const http = (await events()).filter((e) => e.protocol === 'http');
  assert.deepEqual(
    http.map((e) => [e.action, e.decision, e.spiffe_id, e.destination]),
    [
      ['Action::"GET"', 'allow', 'spiffe://corp.example/agents/reader', `127.0.0.1:${httpPort}`],
      ['Action::"GET"', 'deny', 'spiffe://corp.example/agents/reader', `127.0.0.1:${httpPort}`],
      ['Action::"GET"', 'allow', 'spiffe://corp.example/agents/coder', `127.0.0.1:${httpPort}`],
    ],
  );
  assert.deepEqual(
    http.map((e) => e.policies?.[0] ?? null),
    ['http-read-allowlisted', 'readers-no-secret', 'http-read-allowlisted'],
  );
  const tcp = (await events()).filter((e) => e.protocol === 'tcp' && e.destination === `${ns!.hostAddress}:${hostPort}`);
  assert.deepEqual(
    tcp.map((e) => [e.decision, e.spiffe_id]),
    [['deny', 'spiffe://corp.example/agents/coder']],
    "the direct attempt at the host side of the veth was the proxy's to decide",
  );
});

test("podman: the container's processes are in libpod-<id> below the managed cgroup (what attests docker:id)", {
  timeout: 60_000,
}, async (t) => {
  if (skip) return t.skip(skip);
  const { stdout } = await run('podman', [
    '--runtime',
    'runc',
    'run',
    '--rm',
    '--ulimit',
    'nofile=1024:20000',
    '--ulimit',
    'nproc=1000:1000',
    '--network',
    `ns:${ns!.path}`,
    '--cgroup-parent',
    `/${basename(agent!.dir)}`,
    '--rootfs',
    join(work, 'rootfs'),
    '/bin/cat',
    '/proc/self/cgroup',
  ]);
  const v2 = stdout.split('\n').find((l) => l.startsWith('0::'));
  assert.match(v2 ?? '', new RegExp(`^0::/${basename(agent!.dir)}/libpod-[0-9a-f]{64}$`), stdout);
});
