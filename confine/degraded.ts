// Which confinement layers this kernel cannot apply, and whether an agent may
// run without them. Pure: the kernel's support is an input, so the decision is
// tested with any ABI. The native helper makes the same check before exec.
//
// No silent downgrade: every plan applies Landlock filesystem rules (with
// truncate and device-ioctl control), Landlock TCP rules (bind always, connect
// unless the kernel redirects), Landlock scoping and seccomp. A layer the
// kernel lacks refuses the agent unless its registration lists it in
// allow_degraded; then the run says so on every start.
import type { DegradableLayer } from '../capsule/config.js';

export interface KernelSupport {
  /** Landlock ABI version; 0 when the kernel has no Landlock. */
  landlockAbi: number;
  /** seccomp filter mode (SECCOMP_MODE_FILTER) is available. */
  seccomp: boolean;
}

export interface MissingLayer {
  layer: DegradableLayer;
  /** What the agent would run without, and why. */
  why: string;
}

export function missingLayers(kernel: KernelSupport): MissingLayer[] {
  const abi = kernel.landlockAbi;
  const missing: MissingLayer[] = [];
  if (abi < 1) missing.push({ layer: 'landlock', why: 'no Landlock on this kernel: no filesystem, TCP or scoping rules' });
  else {
    if (abi < 3) missing.push({ layer: 'landlock-truncate', why: `Landlock ABI ${abi} < 3: truncate is not controlled` });
    if (abi < 4) missing.push({ layer: 'landlock-net', why: `Landlock ABI ${abi} < 4: no TCP bind/connect rules` });
    if (abi < 5) missing.push({ layer: 'landlock-ioctl-dev', why: `Landlock ABI ${abi} < 5: device ioctls are not controlled` });
    if (abi < 6) missing.push({ layer: 'landlock-scope', why: `Landlock ABI ${abi} < 6: no abstract unix socket or signal scoping` });
  }
  if (!kernel.seccomp) missing.push({ layer: 'seccomp', why: 'no seccomp filter support on this kernel' });
  return missing;
}

export interface DegradedDecision {
  /** Missing and not allowed: the agent must not start. */
  refused: MissingLayer[];
  /** Missing but listed in allow_degraded: the agent starts, with a warning. */
  degraded: MissingLayer[];
}

export function decideDegraded(missing: MissingLayer[], allowDegraded: readonly string[] = []): DegradedDecision {
  return {
    refused: missing.filter((m) => !allowDegraded.includes(m.layer)),
    degraded: missing.filter((m) => allowDegraded.includes(m.layer)),
  };
}

export function describeMissing(layers: MissingLayer[]): string {
  return layers.map((m) => `${m.layer} (${m.why})`).join(', ');
}
