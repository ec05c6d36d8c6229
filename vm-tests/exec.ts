// Small process helpers for the host side of the VM harness.
import { spawnSync } from 'node:child_process';

export class CommandError extends Error {}

/** Runs a command to completion; throws CommandError with its stderr when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 300_000,
    killSignal: 'SIGKILL',
  });
  if (r.error) throw new CommandError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = r.signal ? `killed by ${r.signal} (timeout?)` : `exit ${r.status}`;
    throw new CommandError(`${cmd} ${args.join(' ')}: ${why}\n${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
  }
  return r.stdout;
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const r = spawnSync('test', ['-x', `${dir}/${cmd}`]);
    if (r.status === 0) return `${dir}/${cmd}`;
  }
  return null;
}

/** Like run() but returns stdout as bytes (decompressors). */
export function runBytes(cmd: string, args: string[], timeoutMs = 120_000): Buffer {
  const r = spawnSync(cmd, args, { maxBuffer: 256 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (r.error) throw new CommandError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new CommandError(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr.toString().trim()}`);
  return r.stdout;
}
