// Turns a registration's filesystem and network settings into the exact rules
// lilith-confine applies. Pure: no syscalls, so it is tested on its own.
//
// Landlock can only allow, never carve an exception out of an allowed tree. A
// credential path under an allowed root is kept out by replacing that root
// with its children, minus the branch that leads to the credential path.
import { readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { FilesystemRules, SeccompProfileName } from '../capsule/config.js';

/** Paths that hold credentials: denied unless a registration lists them explicitly. */
export function credentialPaths(home = homedir()): string[] {
  return [
    join(home, '.ssh'),
    join(home, '.aws'),
    join(home, '.config', 'gcloud'),
    join(home, '.azure'),
    join(home, '.kube'),
    join(home, '.docker'),
    join(home, '.gnupg'),
    join(home, '.netrc'),
    join(home, '.git-credentials'),
    '/run/secrets',
    '/var/run/secrets',
    '/sys/fs/bpf',
  ];
}

/** Character devices every program expects; granted read-write as single-file rules. */
export const DEVICE_FILES = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty'];

export interface ConfinePlan {
  profile: SeccompProfileName;
  readOnly: string[];
  readWrite: string[];
  connectPorts: number[];
  bindPorts: number[];
  /** Credential paths kept out although a root contains them. */
  carved: string[];
  /** False when the kernel redirects connects: Landlock would see (and refuse) the pre-redirect port. */
  restrictConnect: boolean;
}

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Expands `root` into rules that cover everything beneath it except `denied`. */
function carve(root: string, denied: string[]): string[] {
  const inside = denied.filter((d) => within(d, root));
  if (inside.length === 0) return [root];
  if (inside.some((d) => d === root)) return [];
  let entries: string[];
  try {
    if (!statSync(root).isDirectory()) return [root];
    entries = readdirSync(root);
  } catch {
    return [];
  }
  return entries.flatMap((name) => carve(join(root, name), inside));
}

export interface PlanInput {
  filesystem?: FilesystemRules;
  profile?: SeccompProfileName;
  proxyPort: number;
  /** Extra TCP ports the agent may connect to (the transparent redirect sees the original port first: see docs/confinement.md). */
  connectPorts?: number[];
  bindPorts?: number[];
  home?: string;
  /** The enforcer's cgroup programs redirect every TCP connect to the proxy. */
  kernelRedirect?: boolean;
  /** Read-only paths added to the registration's (the CA bundle `lilith run` writes). */
  extraReadOnly?: string[];
  /** Paths kept out whatever the registration lists (the enforcer's CA key directory). */
  secrets?: string[];
}

export function planConfinement(input: PlanInput): ConfinePlan {
  const fs = input.filesystem ?? {};
  const listed = [...(fs.read_only ?? []), ...(fs.read_write ?? [])].map((p) => resolve(p));
  // A credential path the registration lists itself is allowed on purpose.
  const secrets = (input.secrets ?? []).map((p) => resolve(p));
  const denied = [...credentialPaths(input.home).filter((c) => !listed.some((l) => within(l, c))), ...secrets];
  const expand = (roots: string[]) => [
    ...new Set(
      roots
        .map((r) => resolve(r))
        .filter((r) => !secrets.some((s) => within(r, s)))
        .flatMap((r) => carve(r, denied)),
    ),
  ];
  const readOnly = expand([...(fs.read_only ?? ['/usr', '/lib', '/lib64', '/etc', '/bin', '/sbin']), ...(input.extraReadOnly ?? [])]);
  const readWrite = [...expand(fs.read_write ?? ['/tmp']), ...DEVICE_FILES];
  const carved = denied.filter((d) => listed.some((l) => within(d, l) && d !== l));
  return {
    profile: input.profile ?? 'standard',
    readOnly,
    readWrite,
    connectPorts: [...new Set([input.proxyPort, ...(input.connectPorts ?? [])])],
    bindPorts: [...new Set(input.bindPorts ?? [])],
    carved,
    restrictConnect: !input.kernelRedirect,
  };
}

/** The lilith-confine argument vector for a plan (before `--`). */
export function confineArgs(
  plan: ConfinePlan,
  opts: { audit?: boolean; cgroupProcs?: string; syncFd?: number; allowDegraded?: string[] } = {},
): string[] {
  const args = ['--profile', plan.profile, '--scope'];
  for (const layer of opts.allowDegraded ?? []) args.push('--allow-degraded', layer);
  for (const p of plan.readOnly) args.push('--ro', p);
  for (const p of plan.readWrite) args.push('--rw', p);
  for (const p of plan.connectPorts) args.push('--connect-port', String(p));
  for (const p of plan.bindPorts) args.push('--bind-port', String(p));
  if (!plan.restrictConnect) args.push('--no-landlock-connect');
  if (opts.audit) args.push('--audit');
  if (opts.cgroupProcs) args.push('--cgroup-procs', opts.cgroupProcs);
  if (opts.syncFd !== undefined) args.push('--sync-fd', String(opts.syncFd));
  return args;
}
