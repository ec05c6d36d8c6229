// `lilith status`: asks the running enforcer (admin socket) what it enforces.
import { parseCommandArgs, runCommand } from '../args.js';
import { adminGet, DEFAULTS, type DaemonStatus } from '../../enforcer/daemon/index.js';

export const summary = 'show what the running enforcer enforces (watermark, sync, refusals, kernel)';

export const usage = `usage: lilith status [--socket PATH] [--json]

  --socket PATH   admin socket of the enforcer (default $LILITH_ADMIN_SOCKET or ${DEFAULTS.admin_socket})
  --json          print the raw status document

Exit: 0 enforcing a current capsule; 1 running but not ready (no capsule, or expired
under fail_closed); 2 cannot reach the enforcer.`;

function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return 'never';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  return `${iso} (${s}s ago)`;
}

export function formatStatus(st: DaemonStatus, now = Date.now()): string {
  const lines: string[] = [];
  const a = st.active;
  lines.push(`enforcer pid ${st.pid}, up since ${st.started_at}: ${st.ready ? 'READY' : `NOT READY (${st.not_ready_reason})`}`);
  if (a) {
    lines.push(`active capsule:  watermark ${a.watermark}${a.expired ? '  *** EXPIRED ***' : ''}`);
    lines.push(`  digest         ${a.digest}`);
    lines.push(`  source         ${a.source}`);
    lines.push(
      `  source commit  ${a.source_commit ?? '-'}${a.capsule_commit && a.capsule_commit !== a.source_commit ? ` (capsule branch at ${a.capsule_commit.slice(0, 12)})` : ''}`,
    );
    lines.push(`  signed by      ${a.keyids.join(', ')}`);
    lines.push(`  activated      ${ago(a.activated_at, now)}`);
    lines.push(
      `  expires        ${a.expires_at}${a.expired ? ` — EXPIRED, on_expiry=${a.on_expiry}: ${a.enforcing ? 'still enforcing it' : 'denying everything'}` : ''}`,
    );
    lines.push(`  engine         ${a.engine}${a.engine_fallback ? ` — FALLBACK from the compiled engine: ${a.engine_fallback}` : ''}`);
  } else lines.push('active capsule:  none (every decision is denied)');
  lines.push(`anti-rollback:   ${st.state ? `watermark ${st.state.watermark}, digest ${st.state.digest.slice(0, 16)}…` : 'no state yet'}`);
  for (const s of st.sync.sources) {
    lines.push(`sync ${s.name}`);
    lines.push(`  last attempt   ${ago(s.last_attempt, now)}: ${s.last_result ?? '-'}${s.last_error ? ` — ${s.last_error}` : ''}`);
    lines.push(`  last success   ${ago(s.last_success, now)}${s.last_commit ? `, branch at ${s.last_commit.slice(0, 12)}` : ''}`);
  }
  const r = st.last_refusal;
  lines.push(`refusals:        ${st.refusals}${r ? `; last ${r.time} from ${r.source}: ${r.code}: ${r.reason}` : ''}`);
  const k = st.kernel;
  lines.push(
    `kernel:          ${k.mode}${k.hooks.length ? `, hooks ${k.hooks.join(' ')}` : ''}${k.heartbeat_age_ms !== null ? `, heartbeat ${k.heartbeat_age_ms} ms ago` : ''}${k.error ? ` — ${k.error}` : ''}`,
  );
  const dp = st.dataplane as { enabled: boolean; error?: string; listen?: string[]; dns?: string | null; active_connections?: number };
  lines.push(
    `dataplane:       ${dp.enabled ? `on${dp.listen ? `, proxy ${dp.listen.join(' ')}` : ''}${dp.dns ? `, dns ${dp.dns}` : ''}${dp.active_connections !== undefined ? `, ${dp.active_connections} connections` : ''}` : 'off'}${dp.error ? ` — ${dp.error}` : ''}`,
  );
  lines.push(
    `admin:           ${st.admin.socket}${st.admin.listen ? `, http://${st.admin.listen}` : ''}; audit ${st.audit.path}${st.audit.dropped ? ` (${st.audit.dropped} dropped)` : ''}`,
  );
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(argv, { socket: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const socket = values.socket ?? process.env.LILITH_ADMIN_SOCKET ?? DEFAULTS.admin_socket;
    let res;
    try {
      res = await adminGet(socket, '/status');
    } catch (err) {
      process.stderr.write(`lilith status: cannot reach the enforcer on ${socket}: ${(err as Error).message}\n`);
      return 2;
    }
    if (res.status !== 200) {
      process.stderr.write(`lilith status: enforcer answered HTTP ${res.status}: ${res.body}\n`);
      return 2;
    }
    const st = JSON.parse(res.body) as DaemonStatus;
    process.stdout.write(values.json ? res.body : formatStatus(st) + '\n');
    return st.ready ? 0 : 1;
  });
}
