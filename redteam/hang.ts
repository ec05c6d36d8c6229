// The red team's commands run with a deadline. One still running at it is a
// hang, reported with what every process of the tree it started (lilith run →
// lilith-confine → the probe) was doing, read from /proc before anything is
// killed: the syscall and kernel stack it sat in, not a bare timeout.
import { readdirSync, readFileSync } from 'node:fs';
import { execa } from 'execa';

/** Syscall numbers (x86_64) an attempt can plausibly hang in: named in the report. */
const SYSCALLS: Record<number, string> = {
  0: 'read',
  7: 'poll',
  23: 'select',
  41: 'socket',
  42: 'connect',
  59: 'execve',
  61: 'wait4',
  202: 'futex',
  232: 'epoll_wait',
  247: 'waitid',
  270: 'pselect6',
  271: 'ppoll',
  281: 'epoll_pwait',
  444: 'landlock_create_ruleset',
  445: 'landlock_add_rule',
  446: 'landlock_restrict_self',
};

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** pid → parent pid, for every process visible now. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    // The comm field may hold spaces and parentheses: the fields after the last ')' are fixed.
    const stat = read(`/proc/${name}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length > 1) out.set(Number(name), Number(fields[1]));
  }
  return out;
}

/** `pid` and its descendants, parents first. */
export function processTree(pid: number): number[] {
  const ppid = parents();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of ppid) if (parent === tree[i]) tree.push(child);
  return tree;
}

/** One line per process: command, state, the syscall it is in and the top of its kernel stack. */
export function describeProcess(pid: number): string {
  const cmdline = read(`/proc/${pid}/cmdline`).split('\0').filter(Boolean);
  if (cmdline.length === 0) return `pid ${pid} (gone)`;
  const state = /^State:\s*(.*)$/m.exec(read(`/proc/${pid}/status`))?.[1] ?? '?';
  const nr = Number(read(`/proc/${pid}/syscall`).split(' ')[0]);
  const syscall = Number.isInteger(nr) ? (nr < 0 ? 'running' : `syscall ${SYSCALLS[nr] ?? nr}`) : 'syscall ?';
  const wchan = read(`/proc/${pid}/wchan`).trim();
  // Root reads the kernel stack; frames are "[<0>] function+0x1f/0x40".
  const stack = read(`/proc/${pid}/stack`)
    .split('\n')
    .map((l) => l.replace(/^\[<[0-9a-f]+>\]\s*/, '').replace(/\+0x.*$/, ''))
    .filter(Boolean)
    .slice(0, 8);
  const argv = cmdline.map((a) => (a.length > 60 ? `${a.slice(0, 57)}...` : a)).join(' ');
  return `pid ${pid} [${argv.slice(0, 160)}] ${state}, ${syscall}${wchan && wchan !== '0' ? `, wchan ${wchan}` : ''}${stack.length ? `, kernel stack ${stack.join(' < ')}` : ''}`;
}

/** The whole tree under `pid`, one process per line. */
export function describeHang(pid: number): string {
  return processTree(pid).map(describeProcess).join('\n');
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** An attempt's command outlived its deadline: a failure whatever the attempt judges, never a block. */
export class AttemptHung extends Error {
  readonly code = 'ATTEMPT_HUNG';
}

/**
 * Runs a command with a deadline. A command still running at the deadline is a
 * hang: its process tree is described (syscall, kernel stack) before it is
 * killed, SIGTERM first (lilith run forwards it to the agent), then SIGKILL to
 * whatever of the tree is left, and the attempt fails with that description.
 */
export async function runBounded(cmd: string, args: string[], timeoutMs = 30_000): Promise<RunResult> {
  const child = execa(cmd, args, { reject: false, stdin: 'ignore' });
  let hang: string | undefined;
  const timer = setTimeout(() => {
    const tree = child.pid ? processTree(child.pid) : [];
    hang = tree.map(describeProcess).join('; ') || 'no process left';
    child.kill('SIGTERM');
    setTimeout(() => {
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, 2000).unref();
  }, timeoutMs);
  const r = await child;
  clearTimeout(timer);
  if (hang !== undefined)
    throw new AttemptHung(
      `HUNG: ${[cmd, ...args]
        .map((a) => a.split('/').at(-1))
        .join(' ')
        .slice(0, 200)} gave no answer within ${timeoutMs / 1000} s ` +
        `(killed; stdout ${JSON.stringify(r.stdout.slice(-200))}, stderr ${JSON.stringify(r.stderr.slice(-300))}); at the deadline: ${hang}`,
    );
  return { code: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
}
