// `lilith status`: asks the running enforcer (admin socket) what it enforces.
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { adminGet, DEFAULT_ADMIN_SOCKET } from '../../enforcer/client/index.js';
import type { DaemonStatus } from '../../enforcer/daemon/index.js';

export const summary = 'show what the running enforcer enforces (watermark, sync, refusals, kernel)';

export const usage = `usage: lilith status [--socket PATH] [--json] [--watch | --wait [--watermark N] [--timeout SECONDS]]

  --socket PATH   admin socket of the enforcer (default $LILITH_ADMIN_SOCKET or ${DEFAULT_ADMIN_SOCKET})
  --json          print the raw status document
  --watch         print the status again every --interval seconds (default 2) until interrupted
  --wait          for scripts: poll until the enforcer is ready (and with --watermark N, enforces
                  watermark N or above); exit 0 then, 1 when --timeout (default 60) passes first

Shows STALE when the trust file has a timestamp role and no fresh timestamp vouches
for the active capsule (a frozen mirror); past the role's fail_after_s it is not ready.

Exit: 0 enforcing a current capsule; 1 running but not ready (no capsule, expired
under fail_closed, stale past fail_after_s, undone by a reset); 2 cannot reach the enforcer.`;

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
    const f = a.freshness;
    lines.push(
      `active capsule:  watermark ${a.watermark}${a.expired ? '  *** EXPIRED ***' : ''}${f?.failed_closed ? '  *** STALE, FAILED CLOSED ***' : f?.stale ? '  *** STALE ***' : ''}`,
    );
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
    lines.push(
      f
        ? `  freshness      ${f.stale ? 'STALE' : 'fresh'}: last vouched ${ago(f.fresh_at, now)} by ${f.timestamp ? 'a timestamp' : 'the capsule itself'}; stale after ${f.stale_after_s}s, fails closed after ${f.fail_after_s}s`
        : '  freshness      not checked (the trust file has no timestamp role)',
    );
    lines.push(`  engine         ${a.engine}${a.engine_fallback ? ` — FALLBACK from the compiled engine: ${a.engine_fallback}` : ''}`);
  } else lines.push('active capsule:  none (every decision is denied)');
  lines.push(
    `anti-rollback:   ${st.state ? `watermark ${st.state.watermark}, digest ${st.state.digest.slice(0, 16)}…${st.state.not_before ? `, not before ${st.state.not_before} (root-signed reset)` : ''}` : 'no state yet'}`,
  );
  if (st.trust)
    lines.push(
      `trust:           version ${st.trust.version}${st.trust.legacy ? ' (legacy format)' : ''}${st.trust.source === 'rotated' ? ', from an in-band rotation' : ''}; capsule ${st.trust.roles.capsule.threshold} of ${st.trust.roles.capsule.keyids.length}, root ${st.trust.roles.root.threshold} of ${st.trust.roles.root.keyids.length}${st.trust.roles.timestamp ? `, timestamp ${st.trust.roles.timestamp.threshold} of ${st.trust.roles.timestamp.keyids.length}` : ''}`,
    );
  for (const s of st.sync.sources) {
    lines.push(`sync ${s.name}`);
    lines.push(`  last attempt   ${ago(s.last_attempt, now)}: ${s.last_result ?? '-'}${s.last_error ? ` — ${s.last_error}` : ''}`);
    lines.push(`  last success   ${ago(s.last_success, now)}${s.last_commit ? `, branch at ${s.last_commit.slice(0, 12)}` : ''}`);
  }
  const r = st.last_refusal;
  lines.push(`refusals:        ${st.refusals}${r ? `; last ${r.time} from ${r.source}: ${r.code}: ${r.reason}` : ''}`);
  const history = (st.refusal_history ?? []).slice(0, -1).slice(-4).reverse();
  for (const h of history) lines.push(`  earlier        ${h.time} from ${h.source}: ${h.code}: ${h.reason.slice(0, 200)}`);
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

async function fetchStatus(socket: string): Promise<{ st: DaemonStatus; body: string } | { error: string }> {
  try {
    const res = await adminGet(socket, '/status');
    if (res.status !== 200) return { error: `enforcer answered HTTP ${res.status}: ${res.body}` };
    return { st: JSON.parse(res.body) as DaemonStatus, body: res.body };
  } catch (err) {
    return { error: `cannot reach the enforcer on ${socket}: ${(err as Error).message}` };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        socket: { type: 'string' },
        json: { type: 'boolean' },
        watch: { type: 'boolean' },
        wait: { type: 'boolean' },
        watermark: { type: 'string' },
        timeout: { type: 'string', default: '60' },
        interval: { type: 'string', default: '2' },
      },
      usage,
    );
    const socket = values.socket ?? process.env.LILITH_ADMIN_SOCKET ?? DEFAULT_ADMIN_SOCKET;
    const timeoutS = Number(values.timeout);
    const intervalS = Number(values.interval);
    const want = values.watermark === undefined ? null : Number(values.watermark);
    if (!(timeoutS > 0) || !(intervalS > 0) || (want !== null && !Number.isSafeInteger(want)))
      throw new UsageError(`--timeout, --interval and --watermark must be numbers\n\n${usage.trimEnd()}`);
    const print = (r: { st: DaemonStatus; body: string }) => process.stdout.write(values.json ? r.body : formatStatus(r.st) + '\n');
    if (values.wait) {
      const deadline = Date.now() + timeoutS * 1000;
      let last: Awaited<ReturnType<typeof fetchStatus>> = { error: 'not asked yet' };
      while (Date.now() < deadline) {
        last = await fetchStatus(socket);
        if ('st' in last && last.st.ready && (want === null || (last.st.active?.watermark ?? -1) >= want)) {
          print(last);
          return 0;
        }
        await sleep(Math.min(500, intervalS * 1000));
      }
      if ('st' in last) print(last);
      process.stderr.write(
        `lilith status: not ${want === null ? 'ready' : `enforcing watermark ${want}`} after ${timeoutS} s${'error' in last ? `: ${last.error}` : ''}\n`,
      );
      return 1;
    }
    for (;;) {
      const r = await fetchStatus(socket);
      if (!values.watch) {
        if ('error' in r) {
          process.stderr.write(`lilith status: ${r.error}\n`);
          return 2;
        }
        print(r);
        return r.st.ready ? 0 : 1;
      }
      process.stdout.write(`--- ${new Date().toISOString()}\n`);
      if ('error' in r) process.stdout.write(`${r.error}\n`);
      else print(r);
      await sleep(intervalS * 1000);
    }
  });
}
