// Per-identity exec allowlists under BPF-LSM (lil_exec_id): a binary allowlisted
// for identity A (a coder) runs for A and is refused to identity B (a reader),
// for exec and for PROT_EXEC mappings alike; the shared allowlist still serves
// both; revoking A's entry refuses A too. Real lilith-probe copies (separate
// inodes) are the agents; each denial is matched to the kernel's own event.
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kernel, KernelEvent } from '../../bpf/index.js';
import { attachRecording, lsmConfig, probeCopies, waitForEvent } from '../../testkit/kernel-fixtures.js';
import { fakeProxy, makeCgroup, makePinRoot, runProbe, type ProbeLine } from '../../testkit/kernel.js';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';

export const description =
  'per-identity exec allowlists: a binary allowlisted for identity A is denied to identity B (exec and PROT_EXEC mappings)';
export const bootLsm = 'bpf';

const EPERM = 1;
const CODER = 51;
const READER = 52;

const show = (ls: ProbeLine[]): string => ls.map((l) => `${l.op}: ${l.ok ? 'ok' : `errno ${l.errno} ${l.err}`}`).join('; ') || 'no output';

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  const [coderBin, readerBin, coderTool, sharedTool] = probeCopies(ctx.workDir, [
    'coder-agent',
    'reader-agent',
    'coder-tool',
    'shared-tool',
  ]) as [string, string, string, string];
  const coderCode = join(ctx.workDir, 'coder-code.bin');
  writeFileSync(coderCode, Buffer.alloc(8192, 0xc3));
  let kernel: Kernel | undefined;
  const proxy = await fakeProxy(() => kernel);
  const pinRoot = makePinRoot();
  const agentCg = makeCgroup();
  const events: KernelEvent[] = [];
  const deniedExec = async (name: string, args: string[], hook: string, identity: number): Promise<void> => {
    const lines = await runProbe(args);
    const last = lines.at(-1);
    const ev = await waitForEvent(
      events,
      (e) => e.kind === 'deny' && e.hook === hook && e.reason === 'exec_not_allowed' && e.identity === identity && e.tgid === last?.pid,
    );
    c.expect(
      name,
      last?.errno === EPERM && !lines.some((l) => l.op === 'pid') && ev !== undefined,
      `${show(lines)}; event ${ev ? `${hook}/exec_not_allowed identity=${ev.identity}` : 'none'}`,
    );
  };
  const ran = async (name: string, args: string[]): Promise<void> => {
    const lines = await runProbe(args);
    c.expect(name, lines.length > 0 && lines.every((l) => l.ok), show(lines));
  };
  try {
    kernel = (
      await attachRecording(
        lsmConfig(pinRoot, agentCg.dir, proxy),
        [
          [{ binary: coderBin }, CODER],
          [{ binary: readerBin }, READER],
        ],
        events,
      )
    ).kernel;
    kernel.allowExecPath(coderTool, CODER);
    kernel.allowExecPath(coderCode, CODER);
    kernel.allowExecPath(sharedTool);

    await ran('identity A (coder) execs its own allowlisted binary', [coderBin, 'exec', coderTool, 'pid']);
    await deniedExec(
      'identity B (reader) cannot exec the binary allowlisted for A',
      [readerBin, 'exec', coderTool, 'pid'],
      'bprm_check_security',
      READER,
    );
    await ran('A execs the shared allowlisted binary', [coderBin, 'exec', sharedTool, 'pid']);
    await ran('B execs the shared allowlisted binary', [readerBin, 'exec', sharedTool, 'pid']);
    await ran('A maps a file allowlisted for A executable', [coderBin, 'mmap-file-x', coderCode]);
    await deniedExec('B cannot map a file allowlisted for A executable', [readerBin, 'mmap-file-x', coderCode], 'mmap_file', READER);
    // A's entry lives in lil_exec_id only: a B process that exec'd A's tool via the shared list would show here.
    await deniedExec(
      'B cannot reach A’s binary through a fork or a shared binary first',
      [readerBin, 'fork', 'exec', sharedTool, 'exec', coderTool, 'pid'],
      'bprm_check_security',
      READER,
    );
    const st = statSync(coderTool, { bigint: true });
    const revoked = kernel.revokeExecInode(st.dev, st.ino, CODER);
    c.expect('revoking A’s entry removes it', revoked, `revokeExecInode → ${revoked}`);
    await deniedExec('after the revoke A cannot exec it either', [coderBin, 'exec', coderTool, 'pid'], 'bprm_check_security', CODER);
    let refusal = 'accepted';
    try {
      kernel.allowExecInode(st.dev, st.ino, -1);
    } catch (e) {
      refusal = `${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
    c.expect('a bad identity is refused, naming the field', refusal.includes('identity'), refusal);
  } finally {
    kernel?.detachAll();
    await proxy.close();
    agentCg.remove();
  }
  return c.result();
}
