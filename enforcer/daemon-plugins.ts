// Binds the optional parts (kernel programs, dataplane) into the daemon. Kept apart
// from daemon.ts so the sync-only daemon loads none of their modules.
import type { DaemonConfig } from './daemon-config.js';
import type { DaemonPlugins } from './daemon.js';

export async function loadPlugins(_cfg: DaemonConfig): Promise<DaemonPlugins> {
  return {};
}
