// Step 7: what happened, read back from the enforcers' audit logs (not from what
// the demo printed), the metrics scrape, and where to look next.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent, DecisionAuditEvent, KernelAuditEvent } from '../../enforcer/audit/event.js';
import type { DemoContext } from './context.js';
import type { Enforcer } from './fleet.js';
import { detail, say, table } from './narrate.js';
import { AGENT_SPIFFE_ID } from './policy-repo.js';
import { lilith } from './shell.js';

export async function readAudit(path: string): Promise<AuditEvent[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as AuditEvent);
}

const short = (mask: string) => '0x' + (mask.replace(/^0x0*/, '') || '0');

/** The agent's decisions and the kernel's refusals, with runs of identical decisions folded into one row. */
function agentRows(events: AuditEvent[]): { rows: string[][]; lines: number[] } {
  const rows: string[][] = [['#', 'what', 'verdict', 'by', 'taint', 'capsule']];
  const lines: number[] = [];
  let last = '';
  let repeat = 0;
  for (const [i, e] of events.entries()) {
    let row: string[] | null = null;
    if (e.kind === 'decision' && e.spiffe_id === AGENT_SPIFFE_ID && e.action !== 'Action::"mcp_session"') {
      const d = e as DecisionAuditEvent;
      const taint = d.taint_before === d.taint_after ? short(d.taint_after) : `${short(d.taint_before)}→${short(d.taint_after)}`;
      row = [
        `${d.protocol} ${d.action.replace(/^Action::/, '').replace(/"/g, '')} → ${d.resource}`,
        d.decision.toUpperCase(),
        d.policies.join(', ') || d.reason || 'default deny',
        taint,
        `w${d.watermark}`,
      ];
    } else if (e.kind === 'kernel' && e.event === 'deny') {
      const k = e as KernelAuditEvent;
      row = [`kernel ${k.hook} ${String(k.detail?.destination ?? '')}`.trim(), 'EPERM', k.reason ?? '', '', ''];
    }
    if (!row) continue;
    const key = row.join('|');
    if (key === last) {
      repeat++;
      rows[rows.length - 1][1] = `${row[0]} (×${repeat + 1})`;
      continue;
    }
    last = key;
    repeat = 0;
    rows.push([String(rows.length), ...row]);
    lines.push(i);
  }
  return { rows, lines };
}

export async function summarize(ctx: DemoContext, fleet: Enforcer[]): Promise<void> {
  const events = await readAudit(fleet[0].audit);
  const { rows, lines } = agentRows(events);
  if (rows.length > 1) {
    say(`   The agent, as enforcer-1 audited it (${fleet[0].audit}):`);
    detail(table(rows));
    // `lilith audit` prints one line per event, in file order.
    const printed = (await lilith(['audit', '--file', fleet[0].audit])).stdout.split('\n');
    say(`   The same rows as \`lilith audit --file ${fleet[0].audit}\` prints them:`);
    detail(lines.map((i) => printed[i] ?? '').join('\n'), 5);
  }
  if (ctx.outcome.skipped.length) {
    say('   Skipped on this machine:');
    for (const x of ctx.outcome.skipped) say(`     ${x.what}: ${x.why}`);
  }
  const received = ctx.exfil.received();
  ctx.outcome.exfil_received = received;
  if (ctx.outcome.agent) say(`   The attacker's listener received ${received.http} HTTP request(s) and ${received.udp} datagram(s).`);

  const gateRows = [['PR', 'gate (lilith prove)', 'merged']];
  for (const g of ctx.outcome.gate)
    gateRows.push([
      `#${g.pr} ${g.title}`,
      g.exit === -1 ? 'skipped' : `exit ${g.exit} (${['proven', 'escalation', 'error'][g.exit] ?? '?'})`,
      g.merged ? 'yes' : 'no',
    ]);
  say('   Pull requests:');
  detail(table(gateRows));
  say('   Capsules published and the fleet that follows them:');
  for (const e of fleet) {
    const caps = (await readAudit(e.audit)).filter((x) => x.kind === 'capsule');
    detail(
      `${e.name}: ${caps.map((c) => `${c.result} w${c.watermark}${c.swap_pause_us !== undefined ? ` (swap ${c.swap_pause_us} µs)` : ''}`).join(', ')}`,
    );
  }

  // A real scrape of enforcer-1's /metrics, kept next to the audit log.
  try {
    const text = await (await fetch(fleet[0].metrics)).text();
    await writeFile(join(fleet[0].dir, 'metrics.txt'), text);
    const shown = text.split('\n').filter((l) => /^lilith_(decisions_total|policy_decisions_total|taint_events_total)\{/.test(l));
    if (shown.length) {
      say(`   ${fleet[0].metrics} (excerpt):`);
      detail(shown.slice(0, 8).join('\n'), 5);
    }
  } catch (err) {
    say(`   ${fleet[0].metrics}: ${(err as Error).message}`);
  }
}

export function whereNext(ctx: DemoContext, fleet: Enforcer[], keepRunning: boolean): void {
  say('');
  say(keepRunning ? 'Still running. Look around:' : 'Where to look next (run `lilith demo --keep-running` to explore a live fleet):');
  say(`   lilith status --socket ${fleet[0].socket}`);
  say(`   lilith audit --follow --file ${fleet[0].audit}`);
  say(`   curl -s ${fleet[0].metrics}   (Grafana: deploy/grafana/lilith.json)`);
  say(`   lilith run --socket ${fleet[0].socket} --agent coder -- curl http://example.com/`);
  say(`   policy repository: ${ctx.repo}   capsules: ${ctx.gitUrl} (branch capsules)`);
}
