// Boots with lsm=landlock (bpf absent from the LSM list) and checks that the project's detection
// (bpf/features.ts: bpfLsmActive from the LSM list, probeBpfLsm end to end) reports BPF-LSM
// inactive, and that this matches what the kernel really does, observed independently with the
// smoke program: it either fails to attach, or attaches and never runs.
import { activeLsms, bpfLsmActive, detectBpfLsm, probeBpfLsm, type LsmProbe } from '../../bpf/features.js';
import { attachPinned, connectFrom, describe, markManaged, readHits, withSmokeRig } from '../bpf-smoke.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'booted without bpf in the LSM list: detection reports BPF-LSM inactive and an attached LSM program does not fire';
export const bootLsm = 'no-bpf';

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  await c.attempt('bpf is absent from the active LSM list', () => {
    const lsms = activeLsms();
    if (lsms.includes('bpf')) throw new Error(`bpf present: ${lsms.join(',')}`);
    return `/sys/kernel/security/lsm = ${lsms.join(',')}`;
  });
  c.expect('bpfLsmActive() reports BPF-LSM inactive', !bpfLsmActive(), `bpfLsmActive() = ${bpfLsmActive()}`);
  const status = detectBpfLsm();
  c.expect(
    'detectBpfLsm() reports not-in-lsm-list with the boot fix',
    status.state === 'not-in-lsm-list' && !status.active && /lsm=.*bpf/.test(status.reason),
    `${status.state}: ${status.reason}`,
  );
  let probe: LsmProbe | undefined;
  await c.attempt('probeBpfLsm() reports the LSM hook does not fire, with a reason', () => {
    probe = probeBpfLsm();
    if (probe.fires || !probe.error) throw new Error(`fires=${probe.fires} error=${probe.error ?? 'none'}`);
    return `loadable=${probe.loadable} fires=false: ${probe.error}`;
  });
  const detectedInactive = !bpfLsmActive() && !status.active && probe !== undefined && !probe.fires;

  await withSmokeRig(c, ctx.projectRoot, 'lilith-nobpf', async ({ object, attacher, pinDir, cg, port }) => {
    const attached = await attachPinned(attacher, object, pinDir);
    ctx.log(`attach: ${JSON.stringify(attached)}`);
    if (!attached.ok) {
      // Also a correct outcome for "inactive": the kernel refuses the program outright.
      c.expect(
        'the LSM program is refused or inert, as detection said',
        detectedInactive,
        `attach refused at ${attached.step}: ${attached.error}`,
      );
      return;
    }
    await markManaged(pinDir, cg.id);
    const managed = await connectFrom(port, cg.dir);
    c.expect('a managed process is not denied (no enforcement without bpf in the LSM list)', managed.ok, describe(managed));
    const hits = await readHits(pinDir);
    c.expect(
      'the attached hook never ran',
      hits.seen === 0 && hits.denied === 0,
      `program attached (${attached.programs.map((p) => p.name).join(', ')}) but seen=${hits.seen} denied=${hits.denied}`,
    );
    c.expect(
      'detection agrees with the kernel: inactive and inert',
      detectedInactive && managed.ok && hits.seen === 0,
      `detected inactive: ${detectedInactive}; hook runs: ${hits.seen}`,
    );
  });
  return c.result();
}
