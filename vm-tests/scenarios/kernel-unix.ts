// BPF-LSM AF_UNIX allowlist: unix_stream_connect and unix_may_send deny a
// managed task's connect/send to a unix socket whose bound address is not
// allowlisted, and permit an allowlisted one. Real lilith-probe processes
// (managed by exec registration, outside any agent cgroup) connect to real
// listeners; each denial is matched to the kernel's event naming the LSM hook.
// The LSM hooks judge the address the peer bound, so a symlink or relative
// path to an allowlisted socket is permitted here (unlike the cgroup
// connect_unix program, which sees the caller's string).
import { copyFileSync, chmodSync, existsSync, symlinkSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { attach, type Kernel, type KernelEvent } from '../../bpf/index.js';
import { makeCgroup, makePinRoot, probe, probeBinary, runProbe, sleep, type ProbeLine } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'AF_UNIX allowlist: BPF-LSM unix_stream_connect/unix_may_send deny and permit; cgroup-only connect_unix/sendmsg_unix on 6.7+, reported missing before';
export const bootLsm = 'bpf';

const EPERM = 1;
const ID = 21;

const show = (l: ProbeLine | undefined): string => (l ? `${l.op}: ${l.ok ? 'ok' : `errno ${l.errno} ${l.err}`} pid=${l.pid}` : 'no output');

function listen(path: string): Promise<Server> {
  const s = createServer((c) => c.on('error', () => {}).resume());
  return new Promise((resolve, reject) => s.once('error', reject).listen(path, () => resolve(s)));
}

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const bin = probeBinary(false);
  const agentBin = join(ctx.workDir, 'agent-probe');
  const plainBin = join(ctx.workDir, 'plain-probe');
  for (const p of [agentBin, plainBin]) {
    copyFileSync(bin, p);
    chmodSync(p, 0o755);
  }
  const allowed = join(ctx.workDir, 'allowed.sock');
  const admin = join(ctx.workDir, 'admin.sock');
  const dgram = join(ctx.workDir, 'log.sock');
  const link = join(ctx.workDir, 'link.sock');
  const abstractName = `lilith-vm-abs-${process.pid}`;
  const servers = [await listen(allowed), await listen(admin)];
  symlinkSync(allowed, link);
  // Datagram receiver and an exact-length abstract listener (node pads abstract names).
  const helperSrc = [
    'import socket,sys,threading,time',
    'd=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); d.bind(sys.argv[1])',
    'a=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); a.bind(b"\\0"+sys.argv[2].encode()); a.listen(64)',
    'threading.Thread(target=lambda: [d.recv(64) for _ in iter(int,1)], daemon=True).start()',
    'threading.Thread(target=lambda: [a.accept()[0].close() for _ in iter(int,1)], daemon=True).start()',
    'time.sleep(600)',
  ].join('\n');
  const helper = spawn('/usr/bin/python3', ['-c', helperSrc, dgram, abstractName], { stdio: 'ignore' });
  for (let i = 0; i < 600 && !existsSync(dgram); i++) await sleep(50);

  let kernel: Kernel | undefined;
  const events: KernelEvent[] = [];
  const agentCg = makeCgroup();
  const waitEvent = async (pred: (e: KernelEvent) => boolean, ms = 3000): Promise<KernelEvent | undefined> => {
    for (let t = 0; t < ms; t += 25) {
      const e = events.find(pred);
      if (e) return e;
      await sleep(25);
    }
    return undefined;
  };
  const denied = async (name: string, args: string[], hook: string, path: string): Promise<void> => {
    const r = await probe(args);
    const ev = r.errno === EPERM ? await waitEvent((e) => e.kind === 'deny' && e.tgid === r.pid) : undefined;
    const got = ev && ev.kind === 'deny' ? `${ev.hook}/${ev.reason} path=${ev.path} identity=${ev.identity}` : 'none';
    c.expect(name, r.errno === EPERM && got === `${hook}/unix_path path=${path} identity=${ID}`, `${show(r)}; event ${got}`);
  };
  const permitted = async (name: string, args: string[]): Promise<void> => {
    const lines = await runProbe(args);
    c.expect(name, lines.length > 0 && lines.every((l) => l.ok), lines.map(show).join('; ') || 'no output');
  };

  try {
    kernel = await attach({
      pinRoot: makePinRoot(),
      cgroupPath: agentCg.dir,
      mode: 'bpf-lsm',
      proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 },
      heartbeatTtlMs: 15000,
      unixAllowlist: [allowed],
    });
    kernel.onEvent((e) => events.push(e));
    kernel.startHeartbeat();
    kernel.registerIdentity({ binary: agentBin }, ID);
    const release = execFileSync('uname', ['-r']).toString().trim();
    c.expect(
      `bpf-lsm mode on ${release}: unix_stream_connect and unix_may_send active, nothing missing`,
      kernel.mode === 'bpf-lsm' &&
        kernel.hooks.active.includes('unix_stream_connect') &&
        kernel.hooks.active.includes('unix_may_send') &&
        kernel.hooks.missing.length === 0 &&
        !kernel.hooks.active.some((h) => h.endsWith('_unix')),
      `active=${kernel.hooks.active.join(',')} missing=${JSON.stringify(kernel.hooks.missing)}`,
    );

    await denied(
      'unix_stream_connect: managed connect to a non-allowlisted socket (an admin socket) gets EPERM',
      [agentBin, 'unix', 'stream', admin],
      'unix_stream_connect',
      admin,
    );
    await permitted('unix_stream_connect: managed connect to the allowlisted socket is permitted', [agentBin, 'unix', 'stream', allowed]);
    await permitted('unix_stream_connect: a symlink to the allowlisted socket is judged by the bound address and permitted', [
      agentBin,
      'unix',
      'stream',
      link,
    ]);
    await denied(
      'unix_stream_connect: managed connect to an abstract socket is denied (not allowlisted)',
      [agentBin, 'unix', 'stream', `@${abstractName}`],
      'unix_stream_connect',
      `@${abstractName}`,
    );
    kernel.allowUnixPath(`\0${abstractName}`);
    await permitted('unix_stream_connect: the abstract socket once allowlisted is permitted', [
      agentBin,
      'unix',
      'stream',
      `@${abstractName}`,
    ]);
    kernel.revokeUnixPath(`\0${abstractName}`);

    await denied(
      'unix_may_send: managed datagram sendto to a non-allowlisted socket gets EPERM',
      [agentBin, 'unix', 'dgram', dgram],
      'unix_may_send',
      dgram,
    );
    await denied(
      'unix_may_send: managed datagram connect to a non-allowlisted socket gets EPERM',
      [agentBin, 'unix', 'dgram-connect', dgram],
      'unix_may_send',
      dgram,
    );
    kernel.allowUnixPath(dgram);
    await permitted('unix_may_send: after allowUnixPath, sendto and connect+send are permitted', [
      agentBin,
      'then',
      'unix',
      'dgram',
      dgram,
      ';;',
      'unix',
      'dgram-connect',
      dgram,
    ]);
    kernel.revokeUnixPath(dgram);
    await denied('unix_may_send: after revokeUnixPath, sendto is denied again', [agentBin, 'unix', 'dgram', dgram], 'unix_may_send', dgram);

    await permitted('an unmanaged process reaches every unix socket', [
      plainBin,
      'then',
      'unix',
      'stream',
      admin,
      ';;',
      'then',
      'unix',
      'stream',
      `@${abstractName}`,
      ';;',
      'unix',
      'dgram',
      dgram,
    ]);

    // ---- cgroup-only mode on the same kernel: connect_unix exists from 6.7 --------
    kernel.detachAll();
    kernel = undefined;
    events.length = 0;
    kernel = await attach({
      pinRoot: makePinRoot(),
      cgroupPath: agentCg.dir,
      mode: 'cgroup-only',
      proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 },
      heartbeatTtlMs: 15000,
      unixAllowlist: [allowed],
    });
    kernel.onEvent((e) => events.push(e));
    kernel.startHeartbeat();
    kernel.registerIdentity({ cgroup: agentCg.dir }, ID);
    const [maj, min] = release.split('.').map(Number) as [number, number];
    const inCg = (...a: string[]): string[] => [plainBin, 'cg', agentCg.procs, ...a];
    if (maj > 6 || (maj === 6 && min >= 7)) {
      c.expect(
        `cgroup-only on ${release}: cgroup/connect_unix and sendmsg_unix active`,
        ['cgroup/connect_unix', 'cgroup/sendmsg_unix'].every((h) => kernel!.hooks.active.includes(h)),
        `active=${kernel.hooks.active.join(',')} missing=${JSON.stringify(kernel.hooks.missing.filter((m) => m.hook.includes('unix')))}`,
      );
      await denied(
        'cgroup connect_unix: managed (cgroup) connect to a non-allowlisted socket gets EPERM',
        inCg('unix', 'stream', admin),
        'connect_unix',
        admin,
      );
      await permitted('cgroup connect_unix: the allowlisted path is permitted', inCg('unix', 'stream', allowed));
      await denied('cgroup sendmsg_unix: managed datagram sendto denied', inCg('unix', 'dgram', dgram), 'sendmsg_unix', dgram);
    } else {
      const m = kernel.hooks.missing.filter((x) => x.hook === 'cgroup/connect_unix' || x.hook === 'cgroup/sendmsg_unix');
      c.expect(
        `cgroup-only on ${release} (< 6.7): connect_unix/sendmsg_unix reported missing with the reason, attach still succeeds`,
        m.length === 2 && m.every((x) => x.reason.includes('6.7')) && kernel.hooks.active.includes('cgroup/connect4'),
        JSON.stringify(m),
      );
    }
  } catch (err) {
    c.expect('scenario ran to the end', false, err instanceof Error ? (err.stack ?? err.message) : String(err));
  } finally {
    kernel?.detachAll();
    helper.kill('SIGKILL');
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    agentCg.remove();
  }
  return c.result();
}
