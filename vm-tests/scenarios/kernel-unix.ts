// BPF-LSM AF_UNIX allowlist: unix_stream_connect and unix_may_send deny a
// managed task's connect/send to a unix socket whose bound address is not
// allowlisted, and permit an allowlisted one. Real lilith-probe processes
// (managed by exec registration, outside any agent cgroup) connect to real
// listeners; each denial is matched to the kernel's event naming the LSM hook.
// The LSM hooks judge the address the peer bound, so a symlink or relative
// path to an allowlisted socket is permitted here (unlike the cgroup
// connect_unix program, which sees the caller's string).
import { symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { IdentitySelector, Kernel, KernelEvent } from '../../bpf/index.js';
import { attachRecording, probeCopies, unixListener, unixPeers, waitForEvent } from '../../testkit/kernel-fixtures.js';
import { makeCgroup, makePinRoot, probe, runProbe, type ProbeLine } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'AF_UNIX allowlist: BPF-LSM unix_stream_connect/unix_may_send deny and permit; cgroup-only connect_unix/sendmsg_unix on 6.7+, reported missing before';
export const bootLsm = 'bpf';

const EPERM = 1;
const ID = 21;

const show = (l: ProbeLine | undefined): string => (l ? `${l.op}: ${l.ok ? 'ok' : `errno ${l.errno} ${l.err}`} pid=${l.pid}` : 'no output');

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const [agentBin, plainBin] = probeCopies(ctx.workDir, ['agent-probe', 'plain-probe']) as [string, string];
  const allowed = join(ctx.workDir, 'allowed.sock');
  const admin = join(ctx.workDir, 'admin.sock');
  const dgram = join(ctx.workDir, 'log.sock');
  const link = join(ctx.workDir, 'link.sock');
  const abstractName = `lilith-vm-abs-${process.pid}`;
  const servers = [await unixListener(allowed), await unixListener(admin)];
  symlinkSync(allowed, link);
  const peers = await unixPeers(dgram, abstractName);

  let kernel: Kernel | undefined;
  const events: KernelEvent[] = [];
  const agentCg = makeCgroup();
  const denied = async (name: string, args: string[], hook: string, path: string): Promise<void> => {
    const r = await probe(args);
    const ev =
      r.errno === EPERM ? await waitForEvent(events, (e) => e.kind === 'deny' && e.tgid === r.pid, { timeoutMs: 3000 }) : undefined;
    const got = ev && ev.kind === 'deny' ? `${ev.hook}/${ev.reason} path=${ev.path} identity=${ev.identity}` : 'none';
    c.expect(name, r.errno === EPERM && got === `${hook}/unix_path path=${path} identity=${ID}`, `${show(r)}; event ${got}`);
  };
  const permitted = async (name: string, args: string[]): Promise<void> => {
    const lines = await runProbe(args);
    c.expect(name, lines.length > 0 && lines.every((l) => l.ok), lines.map(show).join('; ') || 'no output');
  };

  try {
    const attachIn = async (mode: 'bpf-lsm' | 'cgroup-only', identity: IdentitySelector): Promise<Kernel> =>
      (
        await attachRecording(
          {
            pinRoot: makePinRoot(),
            cgroupPath: agentCg.dir,
            mode,
            proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 },
            heartbeatTtlMs: 15000,
            unixAllowlist: [allowed],
          },
          [[identity, ID]],
          events,
        )
      ).kernel;
    kernel = await attachIn('bpf-lsm', { binary: agentBin });
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
    kernel = await attachIn('cgroup-only', { cgroup: agentCg.dir });
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
    peers.close();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    agentCg.remove();
  }
  return c.result();
}
