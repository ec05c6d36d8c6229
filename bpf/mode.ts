// Which enforcement mode the kernel side runs in, and what it reports about it.
// BPF-LSM (LSM hooks + cgroup interception) when the kernel really runs LSM
// programs, otherwise cgroup-only (cgroup programs doing the network and unix
// jobs). The reasons a hook is missing are kept, because an operator asking
// "why is exec not enforced here" needs the kernel's answer, not a boolean.
import { join } from 'node:path';
import { BpfError } from './loader.js';
import { bpfLsmActive, probeBpfLsm } from './features.js';
import { PROGRAMS, type ProgramSpec } from './programs.js';

export type KernelMode = 'bpf-lsm' | 'cgroup-only';

/** Kernel.hooks: hooks enforcing now, and the ones that are not with why. */
export interface HookStatus {
  readonly active: string[];
  readonly missing: { hook: string; reason: string }[];
}

/** Why BPF-LSM cannot be used here, or null when it can (the probe is loaded from objectDir when given). */
export function lsmUnavailable(objectDir?: string): string | null {
  if (!bpfLsmActive()) return 'bpf is not in the active LSM list (/sys/kernel/security/lsm); boot with lsm=...,bpf';
  const probe = probeBpfLsm(objectDir ? join(objectDir, 'lsm_probe.bpf.o') : undefined);
  if (!probe.fires) return probe.error ?? 'BPF-LSM probe did not fire';
  return null;
}

/**
 * The mode to try first and, for cgroup-only, why LSM is out. An explicit
 * 'bpf-lsm' request on a kernel that cannot do it is an error, never a silent downgrade.
 */
export function startingMode(requested: 'auto' | KernelMode, objectDir?: string): { mode: KernelMode; lsmWhy: string | null } {
  if (requested === 'cgroup-only') return { mode: 'cgroup-only', lsmWhy: 'cgroup-only mode requested' };
  const lsmWhy = lsmUnavailable(objectDir);
  if (lsmWhy && requested === 'bpf-lsm')
    throw new BpfError('attach', 95 /* EOPNOTSUPP */, { detail: `BPF-LSM requested but unavailable: ${lsmWhy}` });
  return { mode: lsmWhy ? 'cgroup-only' : 'bpf-lsm', lsmWhy };
}

/** The programs a mode runs; without interception only the programs outside the redirect path. */
export function programsFor(mode: KernelMode, intercept: boolean): ProgramSpec[] {
  return PROGRAMS.filter((s) =>
    s.kind === 'lsm' ? mode === 'bpf-lsm' : s.cgroupModeOnly ? mode === 'cgroup-only' : intercept || !s.intercept,
  );
}

/** Every LSM hook is missing, for one reason, in cgroup-only mode. */
export function lsmHooksMissing(reason: string): { hook: string; reason: string }[] {
  return PROGRAMS.filter((p) => p.kind === 'lsm').map((s) => ({ hook: s.hook, reason }));
}
