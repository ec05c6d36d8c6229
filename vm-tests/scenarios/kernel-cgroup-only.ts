// Booted without bpf in the LSM list: attach() in auto mode must report
// cgroup-only mode, list every LSM hook as missing with the reason, and still
// enforce with the cgroup programs (redirect to the proxy, deny UDP and raw).
import { attach, type Kernel } from '../../bpf/index.js';
import { directListener, fakeProxy, makeCgroup, makePinRoot, probe } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description = 'no bpf in the LSM list: cgroup-only mode, missing LSM hooks listed, cgroup programs still enforce';
export const bootLsm = 'no-bpf';

export async function run(_ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  let kernel: Kernel | undefined;
  const proxy = await fakeProxy(() => kernel);
  const direct = await directListener();
  const agent = makeCgroup();
  try {
    // Long TTL: TCG guests on a busy host stall; the TTL is kernel-failclosed's subject.
    kernel = await attach({
      cgroupPath: agent.dir,
      pinRoot: makePinRoot(),
      heartbeatTtlMs: 15000,
      proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
    });
    kernel.registerIdentity({ cgroup: agent.dir }, 5);
    kernel.startHeartbeat();
    const missing = kernel.hooks.missing.map((m) => m.hook);
    c.expect('auto mode falls back to cgroup-only', kernel.mode === 'cgroup-only', `mode=${kernel.mode}`);
    c.expect(
      'every LSM hook is reported missing, with the reason',
      ['socket_connect', 'socket_create', 'socket_sendmsg', 'bprm_check_security', 'mmap_file', 'file_mprotect', 'task_alloc'].every((h) =>
        missing.includes(h),
      ) && kernel.hooks.missing.every((m) => m.reason.length > 0),
      `missing=${missing.join(',')} reason=${kernel.hooks.missing[0]?.reason ?? ''}`,
    );
    c.expect(
      'the cgroup hooks are active',
      ['cgroup/connect4', 'cgroup/connect6', 'cgroup/sendmsg4', 'cgroup/sock_create', 'sockops'].every((h) =>
        kernel!.hooks.active.includes(h),
      ),
      kernel.hooks.active.join(','),
    );
    const r = await probe(['cg', agent.procs, 'connect', '203.0.113.9', '443']);
    const acc = proxy.accepted.find((a) => a.firstLine === String(r.pid));
    c.expect(
      'managed connect is redirected to the proxy; getpeername shows the original',
      r.reply === 'proxy 203.0.113.9:443' && r.peer === '203.0.113.9:443',
      `${r.op} ok=${r.ok} errno=${r.errno} reply=${r.reply} peer=${r.peer}`,
    );
    c.expect(
      'the proxy recovers the original destination and identity',
      acc?.original?.address === '203.0.113.9' && acc.original.identity === 5,
      JSON.stringify(acc?.original ?? null, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    );
    const u = await probe(['cg', agent.procs, 'udp', '198.51.100.1', '9999']);
    c.expect('managed UDP other than DNS gets EPERM', u.errno === 1, `errno=${u.errno}`);
    const raw = await probe(['cg', agent.procs, 'raw']);
    c.expect('managed raw socket gets EPERM', raw.errno === 1, `errno=${raw.errno}`);
    const un = await probe(['connect', '127.0.0.1', String(direct.port)]);
    c.expect('unmanaged process untouched', un.reply === 'direct', `reply=${un.reply}`);
  } finally {
    kernel?.detachAll();
    agent.remove();
    await proxy.close();
    await direct.close();
  }
  return c.result();
}
