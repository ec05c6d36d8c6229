// Step 6: a hot swap while the agent runs. PR #3 (a tightening) goes through the
// gate, is merged and released; the fleet picks the new capsule up from git and
// swaps it in without stopping; the agent's next call is decided by it.
import { adminPost } from '../../enforcer/client/index.js';
import type { DemoContext } from './context.js';
import { type Enforcer, fleetTable, snapshot, waitForFleet } from './fleet.js';
import { detail, say, step } from './narrate.js';
import { AGENT_SPIFFE_ID } from './policy-repo.js';
import { gateAndMerge, QUARANTINE_PR } from './pull-requests.js';
import { release } from './release.js';

/** With no agent: the decision the agent would have asked for, what-if, on enforcer-1. */
async function whatIf(e: Enforcer): Promise<string> {
  const r = await adminPost(e.socket, '/authorize', {
    principal: { type: 'Agent', id: AGENT_SPIFFE_ID },
    action: { type: 'Action', id: 'list_directory' },
    resource: { type: 'MCPServer', id: 'files' },
    context: { taint: ['CREDENTIALS'], data_touched: 8, tool: 'list_directory', arguments: { path: '/workspace' } },
  });
  const d = JSON.parse(r.body) as { decision: string; reasons: string[]; watermark: number };
  return `${d.decision.toUpperCase()} by [${d.reasons.join(', ')}] at watermark ${d.watermark}`;
}

export async function hotSwap(ctx: DemoContext, fleet: Enforcer[]): Promise<void> {
  step(6, `Hot swap: a new capsule is released while ${ctx.can.agent ? 'the fleet enforces' : 'the agent runs'}`);
  const before = ctx.can.agent ? await whatIf(fleet[0]) : null;
  const gate = await gateAndMerge(ctx, QUARANTINE_PR, { showDiff: true });
  if (!gate.merged) throw new Error(`PR #${QUARANTINE_PR.pr} did not pass the gate (exit ${gate.exit}); nothing to release`);
  const published = new Date();
  const rel = await release(ctx, gate.report);
  ctx.outcome.swap = { watermark: rel.watermark, published_at: published.toISOString() };
  const statuses = await waitForFleet(fleet, rel.watermark, 30_000);
  say(`   the fleet follows (sync → verify → atomic swap; no restart):`);
  detail(fleetTable(fleet, statuses));
  for (const [i, s] of statuses.entries()) {
    const after = s.active ? Date.parse(s.active.activated_at) - published.getTime() : Number.NaN;
    say(`   ${fleet[i].name}: watermark ${rel.watermark} active ${(after / 1000).toFixed(1)} s after the release started`);
  }
  if (before) {
    say(`   what-if (no agent: ${ctx.can.agent}): list_directory by a tainted session was ${before}; now ${await whatIf(fleet[0])}`);
  }
  await snapshot(fleet, `w${rel.watermark}`);
}
