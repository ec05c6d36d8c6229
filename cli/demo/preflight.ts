// What this machine lets the demo run for real. Each part that cannot run is
// named with the reason; the demo runs everything else and says what it skipped.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { mountPointsOf } from '../../bpf/mounts.js';
import { CONFINE_BIN } from '../../confine/native.js';
import { BPF_OBJECT } from './paths.js';

export interface Capabilities {
  /** null: the first enforcer attaches the kernel programs; else why not. */
  kernel: string | null;
  /** null: a real agent runs under `lilith run`; else why not. */
  agent: string | null;
  /** null: the proof gate runs cvc5; else why not. */
  gate: string | null;
}

async function runs(cmd: string, args: string[]): Promise<boolean> {
  const r = await execa(cmd, args, { reject: false, stdin: 'ignore', timeout: 10_000 }).catch(() => null);
  return r?.exitCode === 0;
}

export async function preflight(opts: { noKernel: boolean }): Promise<Capabilities> {
  if (!(await runs('git', ['--version'])))
    throw new Error('the demo needs git (the policy repository and the git server are real): install git and run again');
  let kernel: string | null = null;
  if (opts.noKernel) kernel = '--no-kernel was given';
  else if (process.platform !== 'linux') kernel = `kernel enforcement needs Linux (this is ${process.platform})`;
  else if (process.getuid?.() !== 0)
    kernel = 'not root: attaching BPF programs and creating agent cgroups need root (run `sudo npm start`)';
  else if (mountPointsOf('cgroup2').length === 0 && !existsSync('/sys/fs/cgroup'))
    kernel = 'no cgroup v2 on this machine (the cgroup programs attach to a cgroup2 directory)';
  else if (!existsSync(BPF_OBJECT)) kernel = `${BPF_OBJECT} is missing: run \`npm run bootstrap\``;
  let agent: string | null = kernel;
  if (!agent && !existsSync(CONFINE_BIN)) agent = `${CONFINE_BIN} is missing: run \`npm run bootstrap\``;
  const gate = (await runs('cvc5', ['--version'])) ? null : 'cvc5 is not installed (`apt-get install cvc5`; the bootstrap does it as root)';
  return { kernel, agent, gate };
}
