// The kernel room's front door: the bridge that drives bpf/index.ts from the active
// capsule, and what it reports. Loading this module does not load the native addon;
// the caller imports bpf/index.ts and passes it to the bridge.
export { KernelBridge, type KernelBridgeOptions } from './bridge.js';
export type { KernelStatus } from './status.js';
