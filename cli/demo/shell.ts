// Runs the real tools the way a user or CI would: the `lilith` CLI as a child
// process (its exit code is the outcome), and git.
import { execa } from 'execa';
import { CLI } from './paths.js';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** `lilith ARGS…` as a separate process; never throws on a non-zero exit. */
export async function lilith(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    stdin: 'ignore',
    env: opts.env,
    timeout: opts.timeoutMs ?? 60_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The demo's commits have a fixed author, so they never depend on the user's git configuration. */
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Lilith demo',
  GIT_AUTHOR_EMAIL: 'demo@lilith.invalid',
  GIT_COMMITTER_NAME: 'Lilith demo',
  GIT_COMMITTER_EMAIL: 'demo@lilith.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_TERMINAL_PROMPT: '0',
};

/** git in `repo`; throws with git's own message on failure. */
export async function git(repo: string, args: string[]): Promise<string> {
  const r = await execa('git', ['-C', repo, '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args], {
    reject: false,
    stdin: 'ignore',
    env: GIT_ENV,
  });
  if (r.exitCode !== 0) throw new Error(`git ${args.join(' ')} failed: ${String(r.stderr).trim() || String(r.stdout).trim()}`);
  return String(r.stdout).trim();
}
