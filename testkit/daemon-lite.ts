// A minimal stand-in for the enforcer daemon's kernel side, for tests and
// measurements until the real daemon exists: attach (or re-adopt), register
// identities, heartbeat every 250 ms, print one "ready" line. SIGTERM/SIGINT
// release the handles without detaching (pinned programs keep enforcing).
//   node dist/testkit/daemon-lite.js '<json>'   json = KernelConfig & {
//     identities?: {selector: IdentitySelector, identity: number, jit?: boolean}[],
//     allowExec?: string[] }
import { attach, type IdentitySelector, type KernelConfig } from '../bpf/index.js';

interface LiteConfig extends KernelConfig {
  readonly identities?: { selector: IdentitySelector; identity: number; jit?: boolean }[];
  readonly allowExec?: string[];
  readonly heartbeatMs?: number;
}

const started = performance.now();
const raw = process.argv[2];
if (!raw) {
  process.stderr.write('usage: daemon-lite <json config>\n');
  process.exit(2);
}
let cfg: LiteConfig;
try {
  cfg = JSON.parse(raw) as LiteConfig;
} catch (e) {
  process.stderr.write(`daemon-lite: config is not JSON: ${(e as Error).message}\n`);
  process.exit(2);
}
const kernel = await attach(cfg);
for (const r of cfg.identities ?? []) kernel.registerIdentity(r.selector, r.identity, { jit: r.jit });
for (const p of cfg.allowExec ?? []) kernel.allowExecPath(p);
kernel.startHeartbeat(cfg.heartbeatMs ?? 250);
const keepAlive = setInterval(() => {}, 1 << 30);
process.stdout.write(
  `ready ${JSON.stringify({ mode: kernel.mode, adopted: kernel.adopted, active: kernel.hooks.active.length, missing: kernel.hooks.missing.length, ms: Math.round(performance.now() - started) })}\n`,
);
const stop = (): void => {
  clearInterval(keepAlive);
  kernel.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
