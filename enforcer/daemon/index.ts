// The daemon room's front door, for callers outside the enforcer (cli, bench, testkit,
// redteam): start the daemon from its settings, talk to a running one over the admin
// socket (../client), attest an agent, write the audit log. No enforcer room imports this one.
export type { DaemonStatus } from './admin-routes.js';
export { attestAgent } from './agents.js';
export { FileAuditSink } from './audit-sink.js';
export { DaemonConfigError, DEFAULTS, readSettingsFile, resolveDaemonConfig } from './config.js';
export type { DaemonConfig, DaemonConfigErrorCode, RawSettings } from './config.js';
export { startDaemon, type Daemon } from './daemon.js';
export type { DaemonPlugins } from './parts.js';
export { loadPlugins } from './plugins.js';
