// The control room's front door: capsule sources (git, directory), activation into
// the snapshot the dataplane reads, and the control-plane metrics. Only what other
// rooms and outside callers use; tests reach the internals directly.
export { Activator, StartupStateError, type KernelApplier, type OfferResult } from './activation.js';
export { controlMetrics } from './metrics.js';
export type { PolicySnapshot, SnapshotSource } from './snapshot.js';
export { contentRefusal, validateCapsule, type ContentRefusal } from './validate-capsule.js';
export { DirSource } from './sync/dir-source.js';
export { GitSource } from './sync/git-source.js';
export type { CapsuleCandidate, CapsuleSource } from './sync/types.js';
