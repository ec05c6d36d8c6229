// Smoke: the guest kernel has BPF-LSM active and BTF, and a trivial BPF-LSM program built by
// the project (testkit/bpf/src/smoke_lsm.bpf.c) denies a managed process's connect() with EPERM while
// an unmanaged process connects. "Managed" = member of a cgroup whose id is in the program's map.
import { activeLsms, bpfLsmActive, detectBpfLsm, hasBtf, probeBpfLsm } from '../../bpf/features.js';
import { attachPinned, connectFrom, describe, detach, markManaged, readHits, withSmokeRig } from '../bpf-smoke.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'kernel version, bpf in the LSM list, BTF, and a BPF-LSM socket_connect program denying a managed process with EPERM';
export const bootLsm = 'bpf';

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  c.expect('kernel version reported', ctx.kernelRelease.length > 0, ctx.kernelRelease);
  await c.attempt('bpf is in the active LSM list', () => {
    const lsms = activeLsms();
    if (!lsms.includes('bpf') || !bpfLsmActive()) throw new Error(`bpf missing: /sys/kernel/security/lsm = ${lsms.join(',')}`);
    return `/sys/kernel/security/lsm = ${lsms.join(',')}`;
  });
  c.expect('kernel BTF is present', hasBtf(), '/sys/kernel/btf/vmlinux');
  const status = detectBpfLsm();
  c.expect('detectBpfLsm() reports active', status.active && status.state === 'active', `${status.state}: ${status.reason}`);
  await c.attempt('feature probe (bpf/features probeBpfLsm) sees an LSM program load and fire', () => {
    const p = probeBpfLsm();
    if (!p.loadable || !p.fires) throw new Error(`loadable=${p.loadable} fires=${p.fires}: ${p.error ?? ''}`);
    return 'loadable and fires';
  });

  await withSmokeRig(c, ctx.projectRoot, 'lilith-smoke', async ({ object, attacher, pinDir, cg, port }) => {
    const attached = await attachPinned(attacher, object, pinDir);
    const attachedOk = c.expect(
      'smoke_lsm.bpf.o loads and attaches to lsm/socket_connect',
      attached.ok,
      attached.ok
        ? attached.programs.map((p) => `${p.name} prog id ${p.id}`).join(', ')
        : `${attached.step} ${attached.name}: ${attached.error}\n${attached.stderr}`,
    );
    if (!attachedOk) return;
    await markManaged(pinDir, cg.id);
    ctx.log(`managed cgroup ${cg.dir} id ${cg.id}, listener 127.0.0.1:${port}`);

    const unmanaged = await connectFrom(port);
    c.expect('connect from an unmanaged process succeeds', unmanaged.ok, describe(unmanaged));
    const managed = await connectFrom(port, cg.dir);
    c.expect('connect from a managed process gets EPERM', !managed.ok && managed.code === 'EPERM', describe(managed));
    const hits = await readHits(pinDir);
    c.expect('the hook counted the denied connect', hits.denied >= 1 && hits.seen >= 2, `denied=${hits.denied} seen=${hits.seen}`);

    detach(pinDir);
    const after = await connectFrom(port, cg.dir);
    c.expect('after unpinning the link the managed process connects again', after.ok, describe(after));
  });
  return c.result();
}
