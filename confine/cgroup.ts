// The agent's cgroup: where kernel enforcement recognises it as managed.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureCgroup2 } from '../bpf/mounts.js';

/** The cgroup2 mount point (mounted at /sys/fs/cgroup/unified when the host has none). */
export function cgroup2Root(): string {
  return ensureCgroup2();
}

/** Creates (if needed) and returns the agent's cgroup directory and its path relative to the cgroup2 root. */
export function agentCgroup(cgroupRoot: string, agent: string): { dir: string; path: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(agent)) throw new Error(`agent name "${agent}" may contain only letters, digits, ".", "-" and "_"`);
  const rel = `/${cgroupRoot.replace(/^\/+|\/+$/g, '')}/${agent}`;
  const dir = join(cgroup2Root(), rel);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  return { dir, path: rel };
}
