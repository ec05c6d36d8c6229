// The red-team stage: a real enforcer (kernel programs + dataplane) on a
// private cgroup subtree and pin root, an agent cgroup, and the attacker's
// listeners (TCP v4/v6, UDP, DNS) the attempts try to reach.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKey, signCapsule, trustFromKeys } from '../capsule/index.js';
import { buildPayload } from '../pipeline/capsule-build.js';
import { readPolicyDir } from '../pipeline/policy-source.js';
import { adminGet } from '../enforcer/client/index.js';
import { ensureCgroup2 } from '../bpf/mounts.js';
import { ESCAPE_PROBE_BIN, landlockSupport } from '../confine/native.js';
import { runBounded as run, type RunResult } from './hang.js';
import { declareTlsUpstream } from './tls-attempts.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const CLI = join(ROOT, 'dist/cli/main.js');
const LILITH_PROBE = join(ROOT, 'testkit/progs/lilith-probe');
const NFT_BIN = '/usr/sbin/nft';

export interface ProbeLine {
  op: string;
  ok: boolean;
  errno: number;
  err: string;
}

type Channel = 'tcp' | 'tcp6' | 'udp' | 'dns';

export interface RedteamEnv {
  exfil: { host4: string; tcpPort: number; tcp6Port: number; udpPort: number; received(ch: Channel): number };
  escapeProbe: string;
  copiedBinary: string;
  /** A probe copy allowlisted for the coding agent only (its registration's exec_allowlist). */
  coderOnlyBinary: string;
  pinRoot: string;
  adminSocket: string;
  abstractSocket: string;
  heartbeatTtlMs: number;
  daemonPid(): number;
  pinsIntact(): boolean;
  killDaemon(): Promise<void>;
  /** Runs lilith-probe inside an agent's cgroup (default the coding agent): managed, not confined. */
  probeInAgent(args: string[], agent?: 'coder' | 'native'): Promise<ProbeLine[]>;
  dnsQueryInAgent(name: string, server: string): Promise<string>;
  /** Runs `command` with `lilith run` as `agent` (default the coding agent). */
  runConfined(command: string[], profile?: string, agent?: 'coder' | 'native'): Promise<RunResult>;
  /** This kernel's Landlock ABI (0: none). */
  landlockAbi: number;
  /** How long one command of an attempt may take before it counts as hung. */
  commandTimeoutMs: number;
  sleep(ms: number): Promise<void>;
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => delay(ms);

function listenTcp(host: string, onConn: () => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer((c) => {
      onConn();
      c.destroy();
    });
    s.once('error', reject);
    s.listen(0, host, () => resolve(s));
  });
}

function listenUdp(type: 'udp4', host: string, port: number, onMsg: () => void): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const s = createSocket(type);
    s.on('message', onMsg);
    s.once('error', reject);
    s.bind(port, host, () => resolve(s));
  });
}

async function freePort(): Promise<number> {
  const s = await listenTcp('127.0.0.1', () => {});
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function dnsQuery(name: string): Buffer {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  return Buffer.concat([Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

export async function startRedteamEnv(
  log: (line: string) => void,
  opts: { readyTimeoutMs?: number; commandTimeoutMs?: number } = {},
): Promise<RedteamEnv> {
  // TCG guests on a loaded host need far longer than 30 s for one lilith run.
  const commandTimeoutMs = opts.commandTimeoutMs ?? 30_000;
  if (process.getuid?.() !== 0) throw new Error('the red-team suite attaches kernel programs: run it as root');
  for (const bin of [LILITH_PROBE, ESCAPE_PROBE_BIN, join(ROOT, 'bpf/build/cgroup_connect.bpf.o')]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: run npm run bootstrap first`);
  }
  const tag = `lilith-redteam-${process.pid}`;
  const work = await mkdtemp(join(tmpdir(), `${tag}-`));
  const cgroupMount = ensureCgroup2();
  const pinRoot = `/sys/fs/bpf/${tag}`;
  const counts: Record<Channel, number> = { tcp: 0, tcp6: 0, udp: 0, dns: 0 };
  const host4 = '127.0.0.2';
  const tcp = await listenTcp(host4, () => counts.tcp++);
  const tcp6 = await listenTcp('::1', () => counts.tcp6++);
  const udp = await listenUdp('udp4', host4, 0, () => counts.udp++);
  const dns = await listenUdp('udp4', host4, 53, () => counts.dns++);
  const abstractName = `\0${tag}`;
  const abstract = createServer((c) => c.destroy()).listen(abstractName);

  // The bundled policies, pointed at this run's ports, cgroup subtree and agent.
  const [proxyPort, dnsPort] = [await freePort(), await freePort()];
  const src = await readPolicyDir(join(ROOT, 'policies'));
  const payload = buildPayload(src, { watermark: 1, now: new Date(Date.now() - 1000), validityMs: 3600_000 });
  payload.config.proxy = {
    ...payload.config.proxy,
    listen: `127.0.0.1:${proxyPort}`,
    listen6: undefined,
    dns_listen: `127.0.0.1:${dnsPort}`,
    admin_listen: 'off',
  };
  // The attempts' own tools (the escape probe, this Node) may run in the agent: under
  // BPF-LSM the exec allowlist would otherwise stop them before the layer each
  // attempt is about is reached. The copied binary stays off the list.
  payload.config.kernel = {
    ...payload.config.kernel,
    cgroup_root: `${tag}/agents`,
    exec_allowlist: [
      ...(payload.config.kernel.exec_allowlist ?? []),
      ESCAPE_PROBE_BIN,
      process.execPath,
      // The real nft for the DNAT attempt (seccomp and capabilities are the layers it is about).
      ...(existsSync(NFT_BIN) ? [NFT_BIN] : []),
    ],
  };
  // The HTTP/2 upstream the TLS attempts reach through interception, declared and pinned.
  declareTlsUpstream(payload.config);
  const workspace = join(work, 'workspace');
  mkdirSync(workspace);
  // Exists before the capsule is applied: exec allowlists are resolved to inodes then.
  // In a directory only the coder's Landlock roots hold: without BPF-LSM (this host) Landlock is what keeps a confined reader from running it.
  const coderTools = join(work, 'coder-tools');
  mkdirSync(coderTools);
  const coderOnlyBinary = join(coderTools, 'coder-only-tool');
  copyFileSync(LILITH_PROBE, coderOnlyBinary);
  // As in the bundled lilith.json: the coding agent runs Node (a JIT), and a
  // native agent without JIT, where anonymous executable memory is refused.
  const filesystem = { read_only: ['/usr', '/lib', '/etc', '/proc', ROOT], read_write: [workspace] };
  // A Landlock layer this kernel lacks is reported per attempt as a kernel gap, so the agents may run without it (each run warns).
  const allow_degraded = landlockSupport().missing.filter((layer) => layer !== 'seccomp');
  payload.config.registrations = [
    {
      spiffe_id: 'spiffe://corp.example/agents/coder',
      selectors: [`cgroup:/${tag}/agents/coder`],
      groups: ['coding'],
      profile: 'standard',
      jit: true,
      filesystem: { ...filesystem, read_only: [...filesystem.read_only, coderTools] },
      allow_degraded,
      exec_allowlist: [coderOnlyBinary],
    },
    {
      spiffe_id: 'spiffe://corp.example/agents/native',
      selectors: [`cgroup:/${tag}/agents/native`],
      groups: ['coding'],
      profile: 'standard',
      jit: false,
      filesystem,
      allow_degraded,
    },
  ];
  const key = generateSigningKey();
  const drops = join(work, 'drops');
  mkdirSync(drops);
  writeFileSync(join(drops, 'capsule.json'), signCapsule(payload, [key]));
  const trust = join(work, 'trust.json');
  writeFileSync(trust, JSON.stringify(trustFromKeys([key], 1)));
  const adminSocket = join(work, 'admin.sock');

  log(`starting the enforcer (proxy 127.0.0.1:${proxyPort}, pins ${pinRoot})`);
  const daemon: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      'enforcer',
      '--capsule-dir',
      drops,
      '--trust',
      trust,
      '--state-dir',
      join(work, 'state'),
      '--admin-socket',
      adminSocket,
      '--admin-listen',
      'off',
      '--audit',
      join(work, 'audit.jsonl'),
    ],
    {
      env: { ...process.env, LILITH_PIN_ROOT: pinRoot },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let daemonErr = '';
  daemon.stderr!.on('data', (c: Buffer) => (daemonErr += c.toString()));
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  let lastStatus = 'no answer on the admin socket yet';
  for (;;) {
    try {
      const body = (await adminGet(adminSocket, '/status', 2000)).body;
      lastStatus = body.slice(0, 1500);
      const st = JSON.parse(body) as { kernel: { mode: string; heartbeat_age_ms: number | null }; dataplane?: { listen?: string[] } };
      if (st.kernel.heartbeat_age_ms !== null && st.dataplane?.listen?.length) {
        log(`enforcer ready: kernel ${st.kernel.mode}, proxy ${st.dataplane.listen.join(', ')}`);
        break;
      }
    } catch {
      // not up yet
    }
    if (daemon.exitCode !== null || Date.now() > deadline)
      throw new Error(
        `enforcer did not become ready (${daemon.exitCode !== null ? `exited ${daemon.exitCode}` : `${opts.readyTimeoutMs ?? 60_000} ms`}); last status: ${lastStatus}\n${daemonErr.slice(-2000)}`,
      );
    await sleep(100);
  }
  const procsOf = (agent: 'coder' | 'native') => join(cgroupMount, tag, 'agents', agent, 'cgroup.procs');
  const agentProcs = procsOf('coder');
  const copiedBinary = join(workspace, 'not-allowlisted');
  copyFileSync(LILITH_PROBE, copiedBinary);

  const parseLines = (out: string): ProbeLine[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as ProbeLine);

  return {
    exfil: {
      host4,
      tcpPort: (tcp.address() as AddressInfo).port,
      tcp6Port: (tcp6.address() as AddressInfo).port,
      udpPort: udp.address().port,
      received: (ch) => counts[ch],
    },
    escapeProbe: ESCAPE_PROBE_BIN,
    copiedBinary,
    coderOnlyBinary,
    pinRoot,
    adminSocket,
    abstractSocket: abstractName,
    heartbeatTtlMs: payload.config.kernel.heartbeat_ttl_ms,
    daemonPid: () => daemon.pid!,
    pinsIntact: () => existsSync(pinRoot) && readdirSync(pinRoot).length > 0,
    async killDaemon() {
      daemon.kill('SIGKILL');
      await new Promise((r) => daemon.once('exit', r));
    },
    async probeInAgent(args, agent = 'coder') {
      return parseLines((await run(LILITH_PROBE, ['cg', procsOf(agent), ...args], commandTimeoutMs)).stdout);
    },
    async dnsQueryInAgent(name, server) {
      const script = `const d=require('dgram').createSocket('udp4');d.on('message',m=>{console.log(['NOERROR','FORMERR','SERVFAIL','NXDOMAIN','NOTIMP','REFUSED'][m[3]&15]??'RCODE'+(m[3]&15));process.exit(0)});d.on('error',e=>{console.log(e.code);process.exit(0)});d.send(Buffer.from(${JSON.stringify(dnsQuery(name).toString('hex'))},'hex'),53,${JSON.stringify(server)},e=>{if(e){console.log(e.code);process.exit(0)}});setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},3000)`;
      const r = await run(LILITH_PROBE, ['cg', agentProcs, 'exec', process.execPath, '-e', script], commandTimeoutMs);
      return r.stdout.trim().split('\n').at(-1) ?? 'no answer';
    },
    runConfined(command, profile, agent = 'coder') {
      return run(
        process.execPath,
        [CLI, 'run', '--socket', adminSocket, '--agent', agent, ...(profile ? ['--profile', profile] : []), '--', ...command],
        commandTimeoutMs,
      );
    },
    landlockAbi: landlockSupport().abi,
    commandTimeoutMs,
    sleep,
    async close() {
      if (daemon.exitCode === null && daemon.signalCode === null) {
        daemon.kill('SIGTERM');
        await new Promise((r) => daemon.once('exit', r));
      }
      const { detachPinned } = await import('../bpf/index.js');
      try {
        detachPinned(pinRoot);
      } catch {
        // nothing pinned
      }
      rmSync(pinRoot, { recursive: true, force: true });
      for (const s of [tcp, tcp6, abstract]) s.close();
      udp.close();
      dns.close();
      const walk = (d: string) => {
        if (!existsSync(d)) return;
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
        try {
          rmdirSync(d);
        } catch {
          // a straggler still inside; left for the next run's cleanup
        }
      };
      walk(join(cgroupMount, tag));
      rmSync(work, { recursive: true, force: true });
    },
  };
}
