// The front door of the kernel side: the enforcer, the daemon's plugin loader,
// benches, VM scenarios and tests take the kernel API from here, so the modules
// behind it can move without touching them (mounts.ts, features.ts and loader.ts
// are the lower layer, used directly where a caller needs only that). attach()
// loads (or re-adopts) Lilith's BPF programs, pins them so they outlive the
// daemon, and returns a Kernel; detachPinned() ends enforcement. See docs/kernel.md.
export { attach } from './attach.js';
export { Kernel } from './kernel.js';
export { describeReplacedPin, detachPinned } from './pins.js';
export type { ReplacedPin } from './pins.js';
export { DEFAULT_PIN_ROOT, KernelConfigError, type KernelConfig, type ProxySettings } from './config.js';
export type { HookStatus, KernelMode } from './mode.js';
export type { IdentityOptions, IdentitySelector } from './identities.js';
export type { KernelEvent, ExecEvent, DenyEvent, OriginalDestination } from './layout.js';
export { cgroupId, cgroupLevel, inodeOf, kernelDev } from './cgroups.js';
