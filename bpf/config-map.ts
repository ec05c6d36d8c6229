// The I/O half of the policy config: writes validated KernelSettings (see
// config.ts) into the single lil_config entry every program reads. A capsule
// swap rewrites it in one map update, so programs never see half a policy.
import { encodeConfig, type KernelSettings } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

export function writeConfig(maps: PinnedMaps, settings: KernelSettings): void {
  maps.get('lil_config').update(Buffer.alloc(4), encodeConfig(settings));
}
