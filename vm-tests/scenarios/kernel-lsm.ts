// Every BPF-LSM hook of Lilith, deny and permit, on a kernel booted with
// lsm=...,bpf. Real lilith-probe processes make the syscalls; each denial is
// matched to the kernel's own event naming the hook that refused it.
// Phase 1 attaches the interception path to an agent cgroup only, so the
// processes under test (managed by exec registration, outside that cgroup) are
// judged by the LSM hooks alone: every denial is provably the LSM hook's, and
// traffic is never let through on the assumption that a cgroup program that
// does not cover the task will redirect it. Phase 2 attaches interception at
// the cgroup2 root and shows such a process redirected to the proxy with its
// identity.
import { copyFileSync, chmodSync, writeFileSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { attach, type Kernel, type KernelEvent, type ExecEvent } from '../../bpf/index.js';
import { ensureCgroup2 } from '../../bpf/mounts.js';
import {
  directListener,
  fakeProxy,
  makeCgroup,
  makePinRoot,
  probe,
  probeBinary,
  runProbe,
  sleep,
  type ProbeLine,
} from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'BPF-LSM: every Lilith LSM hook denies and permits as specified; identity survives fork/exec/double fork; PID reuse inherits nothing';
export const bootLsm = 'bpf';

const EPERM = 1;
const ID = 11;
const JIT_ID = 12;
const LSM_HOOKS = [
  'bprm_check_security',
  'bprm_committed_creds',
  'task_alloc',
  'task_free',
  'socket_create',
  'socket_post_create',
  'socket_connect',
  'socket_sendmsg',
  'mmap_file',
  'file_mprotect',
  'mmap_addr',
];

const show = (l: ProbeLine | undefined): string =>
  l
    ? `${l.op}: ${l.ok ? 'ok' : `errno ${l.errno} ${l.err}`}${l.reply ? ` reply=${l.reply}` : ''}${l.peer ? ` peer=${l.peer}` : ''} pid=${l.pid}`
    : 'no output';

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const bin = probeBinary(false);
  // Separate inodes: `agentBin` is the registered agent, `jitBin` a JIT agent,
  // `toolBin` an unregistered program (allowlisted later), `plainBin` never allowed.
  const agentBin = join(ctx.workDir, 'agent-probe');
  const jitBin = join(ctx.workDir, 'jit-probe');
  const toolBin = join(ctx.workDir, 'tool-probe');
  const plainBin = join(ctx.workDir, 'plain-probe');
  for (const p of [agentBin, jitBin, toolBin, plainBin]) {
    copyFileSync(bin, p);
    chmodSync(p, 0o755);
  }
  const dataFile = join(ctx.workDir, 'code.bin');
  writeFileSync(dataFile, Buffer.alloc(8192, 0xc3));

  let kernel: Kernel | undefined;
  const proxy = await fakeProxy(() => kernel);
  const direct = await directListener();
  const agentCg = makeCgroup();
  const events: KernelEvent[] = [];
  const pinRoot = makePinRoot();
  // A long heartbeat TTL: a TCG guest on a busy host can stall for over a
  // second, and this scenario tests the hooks, not the TTL (kernel-failclosed does).
  const base = {
    pinRoot,
    mode: 'bpf-lsm' as const,
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
    deniedFamilies: [16],
    heartbeatTtlMs: 15000,
  };

  const waitEvent = async (pred: (e: KernelEvent) => boolean, ms = 2000): Promise<KernelEvent | undefined> => {
    for (let t = 0; t < ms; t += 25) {
      const e = events.find(pred);
      if (e) return e;
      await sleep(25);
    }
    return undefined;
  };
  /** A denial observed twice: EPERM in the process, and the kernel's event naming hook and reason. */
  const denied = async (name: string, args: string[], hook: string, reason: string): Promise<void> => {
    const r = await probe(args);
    const ev = r.errno === EPERM ? await waitEvent((e) => e.kind === 'deny' && e.tgid === r.pid && e.hook === hook) : undefined;
    const evReason = ev && ev.kind === 'deny' ? ev.reason : undefined;
    c.expect(
      name,
      r.errno === EPERM && evReason === reason,
      `${show(r)}; event ${ev ? `${hook}/${evReason} identity=${ev.identity}` : 'none'}`,
    );
  };
  const permitted = async (name: string, args: string[], want?: (r: ProbeLine) => boolean): Promise<void> => {
    const lines = await runProbe(args);
    const r = lines.at(-1);
    c.expect(
      name,
      lines.length > 0 && lines.every((l) => l.ok) && (!want || (r !== undefined && want(r))),
      lines.map(show).join('; ') || 'no output',
    );
  };

  try {
    // ---- phase 1: LSM hooks alone -------------------------------------------------
    kernel = await attach({ ...base, cgroupPath: agentCg.dir });
    kernel.onEvent((e) => events.push(e));
    kernel.startHeartbeat();
    kernel.registerIdentity({ binary: agentBin }, ID);
    kernel.registerIdentity({ binary: jitBin }, JIT_ID, { jit: true });
    c.expect(
      'attach reports bpf-lsm mode with every LSM hook active',
      kernel.mode === 'bpf-lsm' && LSM_HOOKS.every((h) => kernel!.hooks.active.includes(h)) && kernel.hooks.missing.length === 0,
      `mode=${kernel.mode} active=${kernel.hooks.active.join(',')} missing=${JSON.stringify(kernel.hooks.missing)}`,
    );

    // socket_connect
    await denied(
      'socket_connect: managed connect to a non-proxy address gets EPERM',
      [agentBin, 'connect', '10.1.2.3', '80'],
      'socket_connect',
      'not_proxy',
    );
    await denied(
      'socket_connect: managed IPv6 connect to a non-proxy address gets EPERM',
      [agentBin, 'connect', '2001:db8::1', '443'],
      'socket_connect',
      'not_proxy',
    );
    await permitted(
      'socket_connect: managed connect to the proxy address is permitted',
      [agentBin, 'connect', '127.0.0.1', String(proxy.port)],
      (r) => r.reply?.startsWith('proxy') ?? false,
    );
    await permitted(
      'socket_connect: an unmanaged process connects anywhere',
      [plainBin, 'connect', '127.0.0.1', String(direct.port)],
      (r) => r.reply === 'direct',
    );

    // socket_create
    await denied('socket_create: managed SOCK_RAW denied', [agentBin, 'raw'], 'socket_create', 'raw_socket');
    await denied('socket_create: managed AF_PACKET denied', [agentBin, 'packet'], 'socket_create', 'packet_socket');
    await denied('socket_create: managed ICMP (ping) socket denied', [agentBin, 'icmp'], 'socket_create', 'icmp');
    await denied(
      'socket_create: managed socket of a configured-denied family (AF_NETLINK) denied',
      [agentBin, 'socket', '16', '3', '0'],
      'socket_create',
      'denied_family',
    );
    await permitted('socket_create: unmanaged AF_NETLINK and raw sockets are permitted', [
      plainBin,
      'then',
      'socket',
      '16',
      '3',
      '0',
      ';;',
      'raw',
    ]);

    // socket_sendmsg
    await denied(
      'socket_sendmsg: managed UDP to a non-DNS destination denied',
      [agentBin, 'udp', '198.51.100.1', '9999'],
      'socket_sendmsg',
      'udp',
    );
    await permitted(
      'socket_sendmsg: managed DNS to the proxy resolver permitted',
      [agentBin, 'udp', '127.0.0.1', String(proxy.dnsPort)],
      (r) => r.reply === 'dns',
    );
    await denied(
      'socket_sendmsg: sendmsg(MSG_FASTOPEN) to a non-proxy address denied (TFO bypasses socket_connect)',
      [agentBin, 'tfo', '10.1.2.3', '80'],
      'socket_sendmsg',
      'fastopen',
    );
    await permitted(
      'socket_sendmsg: sendmsg(MSG_FASTOPEN) to the proxy permitted',
      [agentBin, 'tfo', '127.0.0.1', String(proxy.port)],
      (r) => r.reply?.startsWith('proxy') ?? false,
    );

    // mmap_file / file_mprotect / mmap_addr (W^X and exec allowlist)
    await denied('mmap_file: managed anonymous RWX mapping denied (W^X)', [agentBin, 'mmap-rwx'], 'mmap_file', 'anon_exec');
    await denied('mmap_file: managed anonymous R-X mapping denied', [agentBin, 'mmap-rx'], 'mmap_file', 'anon_exec');
    await permitted('mmap_file: managed anonymous RW mapping permitted', [agentBin, 'mmap-rw']);
    await denied(
      'file_mprotect: managed mprotect(PROT_EXEC) of anonymous memory denied',
      [agentBin, 'mprotect-x'],
      'file_mprotect',
      'anon_exec',
    );
    await permitted('mmap_file + file_mprotect: a JIT identity may map RWX and mprotect(PROT_EXEC)', [
      jitBin,
      'then',
      'mmap-rwx',
      ';;',
      'mprotect-x',
    ]);
    await permitted('mmap_file: an unmanaged process may map RWX', [plainBin, 'mmap-rwx']);
    await denied(
      'mmap_file: managed PROT_EXEC mapping of a non-allowlisted file denied',
      [agentBin, 'mmap-file-x', dataFile],
      'mmap_file',
      'exec_not_allowed',
    );
    kernel.allowExecPath(dataFile);
    await permitted('mmap_file: PROT_EXEC mapping of an allowlisted inode permitted', [agentBin, 'mmap-file-x', dataFile]);
    await denied('mmap_addr: managed mapping below the low-address floor denied', [agentBin, 'mmap-low'], 'mmap_addr', 'low_address');
    const low = await probe([plainBin, 'mmap-low']);
    c.expect(
      'mmap_addr: an unmanaged root process is not denied by Lilith',
      low.ok || low.errno !== EPERM || !events.some((e) => e.tgid === low.pid),
      show(low),
    );

    // bprm_check_security: exec allowlist
    await denied(
      'bprm_check_security: managed exec of a non-allowlisted binary refused',
      [agentBin, 'exec', toolBin, 'pid'],
      'bprm_check_security',
      'exec_not_allowed',
    );
    kernel.allowExecPath(toolBin);
    await permitted('bprm_check_security: managed exec of an allowlisted binary permitted', [agentBin, 'exec', toolBin, 'pid']);

    // task_alloc / bprm: identity survives fork, exec, double fork, setsid
    const ident = async (name: string, args: string[]): Promise<void> => {
      const r = await probe(args);
      const ev = r.errno === EPERM ? await waitEvent((e) => e.kind === 'deny' && e.tgid === r.pid) : undefined;
      c.expect(name, r.errno === EPERM && ev?.identity === ID, `${show(r)}; event identity=${ev?.identity ?? 'none'}`);
    };
    await ident('task_alloc: a forked child keeps the identity (denied, event names it)', [agentBin, 'fork', 'connect', '10.1.2.3', '80']);
    await ident('task_alloc: a double-forked setsid grandchild keeps the identity', [agentBin, 'daemonize', 'connect', '10.1.2.3', '80']);
    await ident('bprm: identity survives exec of another (allowlisted) binary', [
      agentBin,
      'fork',
      'setsid',
      'exec',
      toolBin,
      'connect',
      '10.1.2.3',
      '80',
    ]);
    // Managed through its cgroup (storage created at its first socket), then it
    // moves itself to the root cgroup: still managed, still the same identity.
    kernel.registerIdentity({ cgroup: agentCg.dir }, ID);
    await ident('leaving the agent cgroup does not shed management (task storage)', [
      toolBin,
      'cg',
      agentCg.procs,
      'then',
      'socket',
      '2',
      '1',
      '0',
      ';;',
      'cg',
      join(ensureCgroup2(), 'cgroup.procs'),
      'connect',
      '10.1.2.3',
      '80',
    ]);
    const ex = await waitEvent((e) => e.kind === 'exec' && e.identity === ID && e.path === toolBin);
    c.expect(
      'bprm_committed_creds: exec of a managed process is reported with its identity',
      ex !== undefined,
      ex ? `exec event pid=${ex.pid} path=${(ex as ExecEvent).path}` : 'none',
    );

    // Classification of an unclassified managed process from its exec event.
    kernel.manageCgroup(agentCg.dir);
    const classified = await classifyFlow(kernel, toolBin, agentCg.procs, proxy.port, waitEvent);
    c.expect(
      'unclassified managed process: network denied until classified',
      classified.before === EPERM,
      `before classification: errno ${classified.before}`,
    );
    c.expect(
      'classification by {pid, startNs} from the exec event lets it reach the proxy',
      classified.after === 0,
      `after: errno ${classified.after} (${classified.detail})`,
    );

    // PID reuse: a new unmanaged process that gets a dead managed process's PID inherits nothing.
    const reuse = await pidReuse(agentBin, plainBin, direct.port, kernel);
    c.expect('PID reuse: a process reusing a dead managed PID is not managed', reuse.ok, reuse.detail);

    // ---- phase 2: LSM + interception at the cgroup2 root ---------------------------
    kernel.detachAll();
    kernel = undefined;
    events.length = 0;
    kernel = await attach({ ...base, pinRoot: makePinRoot(), cgroupPath: ensureCgroup2() });
    kernel.onEvent((e) => events.push(e));
    kernel.startHeartbeat();
    kernel.registerIdentity({ binary: agentBin }, ID);
    c.expect(
      'with interception: bpf-lsm mode and the cgroup hooks active',
      kernel.mode === 'bpf-lsm' && kernel.hooks.active.includes('cgroup/connect4') && kernel.hooks.active.includes('socket_connect'),
      kernel.hooks.active.join(','),
    );
    const r = await probe([agentBin, 'connect', '10.1.2.3', '80']);
    const acc = proxy.accepted.find((a) => a.firstLine === String(r.pid));
    c.expect(
      'exec-registered process (no agent cgroup) is redirected to the proxy; getpeername shows the original',
      r.reply === 'proxy 10.1.2.3:80' && r.peer === '10.1.2.3:80',
      show(r),
    );
    c.expect(
      'the proxy recovers the original destination with the LSM identity and pid',
      acc?.original?.identity === ID && acc.original.tgid === r.pid && acc.original.address === '10.1.2.3',
      JSON.stringify(acc?.original, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    );
    const u = await probe([plainBin, 'connect', '127.0.0.1', String(direct.port)]);
    c.expect('with interception: unmanaged processes are untouched', u.reply === 'direct', show(u));
    const d = await probe([agentBin, 'udp', '8.8.8.8', '53']);
    c.expect(
      'with interception: managed DNS to any resolver reaches the proxy DNS port',
      d.reply === 'dns' && d.from === '8.8.8.8:53',
      show(d) + ` from=${d.from}`,
    );
  } finally {
    kernel?.detachAll();
    await proxy.close();
    await direct.close();
    agentCg.remove();
  }
  return c.result();
}

/** Runs a process that joins the managed (unclassified) cgroup, execs, and waits for a go. */
async function classifyFlow(
  kernel: Kernel,
  bin: string,
  procs: string,
  proxyPort: number,
  waitEvent: (p: (e: KernelEvent) => boolean, ms?: number) => Promise<KernelEvent | undefined>,
): Promise<{ before: number; after: number; detail: string }> {
  // before: a one-shot connect from the unclassified cgroup
  const first = await probe([bin, 'cg', procs, 'connect', '127.0.0.1', String(proxyPort)]);
  const child = spawn(bin, ['cg', procs, 'exec', bin, 'wait-stdin', 'connect', '127.0.0.1', String(proxyPort)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const done = new Promise<void>((r) => child.on('close', () => r()));
  const ev = (await waitEvent((e) => e.kind === 'exec' && e.tgid === child.pid && e.path === bin, 5000)) as ExecEvent | undefined;
  if (!ev) {
    child.kill('SIGKILL');
    await done;
    return { before: first.errno, after: -1, detail: 'no exec event' };
  }
  kernel.registerIdentity({ pid: ev.tgid, startNs: ev.startNs }, 13);
  child.stdin.end('go\n');
  await done;
  const line = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProbeLine)
    .at(-1);
  return {
    before: first.errno,
    after: line?.ok ? 0 : (line?.errno ?? -1),
    detail: `exec event startNs=${ev.startNs}; ${line ? `${line.op} ok=${line.ok} reply=${line.reply}` : 'no output'}`,
  };
}

/** Kills a managed process, then makes the next PID the dead one's via ns_last_pid. */
async function pidReuse(agentBin: string, plainBin: string, directPort: number, kernel: Kernel): Promise<{ ok: boolean; detail: string }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const dead = await probe([agentBin, 'pid']);
    // Its classification key is written too: a reused PID must still not match (start time differs).
    kernel.registerIdentity({ pid: dead.pid, startNs: 1n }, ID);
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(dead.pid - 1));
    const r = await probe([plainBin, 'connect', '127.0.0.1', String(directPort)]);
    if (r.pid !== dead.pid) continue;
    return {
      ok: r.reply === 'direct',
      detail: `managed pid ${dead.pid} exited; new process got pid ${r.pid}: ${show(r)} (ns_last_pid was ${readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8').trim()})`,
    };
  }
  return { ok: false, detail: 'could not get the PID reused in 5 attempts' };
}
