// The agent's cgroup: where kernel enforcement recognises it as managed.
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** The cgroup2 mount point, mounting one at /sys/fs/cgroup/unified when none is mounted (root only). */
export function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && fields[dash + 1] === 'cgroup2') return fields[4];
  }
  const target = '/sys/fs/cgroup/unified';
  mkdirSync(target, { recursive: true });
  execFileSync('mount', ['-t', 'cgroup2', 'none', target]);
  return target;
}

/** Creates (if needed) and returns the agent's cgroup directory and its path relative to the cgroup2 root. */
export function agentCgroup(cgroupRoot: string, agent: string): { dir: string; path: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(agent)) throw new Error(`agent name "${agent}" may contain only letters, digits, ".", "-" and "_"`);
  const rel = `/${cgroupRoot.replace(/^\/+|\/+$/g, '')}/${agent}`;
  const dir = join(cgroup2Root(), rel);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  return { dir, path: rel };
}
