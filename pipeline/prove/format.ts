// Human renderings of a proof report: terminal text and a PR-comment markdown.
import { stringifyJsonLong } from '../../cedar/json-long.js';
import { describeCounterexample } from './counterexample.js';
import type { ProofReport } from './report.js';

const HEADLINE: Record<ProofReport['verdict'], string> = {
  proven: 'PROVEN: the head policies permit nothing the base denied, and every invariant holds',
  approved: 'APPROVED ESCALATION: the head policies widen access, and every widening is approved',
  escalation: 'ESCALATION: the head policies permit requests the base denied',
  violation: 'INVARIANT VIOLATED: the head policies permit what an invariant forbids',
};

const DEPLOYED = 'entities.json + registrations';

type Finding = ProofReport['escalations'][number];

/** The approvals/*.json entries (and --approve flags) that would accept a finding; every one is needed. */
export function approvalLines(f: Finding): string[] {
  const out: string[] = [];
  const a = f.approval.action;
  if (a)
    out.push(
      `${JSON.stringify({ action: a.action, principal_type: a.principal_type, resource_type: a.resource_type, reason: '…' })} (or --approve ${shellWord(a.action)})`,
    );
  for (const k of f.approval.changes ?? [])
    out.push(`${JSON.stringify({ change: k, reason: '…' })} (or --approve ${shellWord(`change=${k}`)})`);
  return out;
}

/** A word as a POSIX shell reads it back (keys and qualified actions hold quotes and spaces). */
function shellWord(w: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function approvalText(f: Finding): string[] {
  const out: string[] = [];
  if (f.approval.witness?.length) out.push(`  widened by (changes the witness's entities show): ${f.approval.witness.join(', ')}`);
  const lines = approvalLines(f);
  if (!f.approved && lines.length) {
    out.push(`  approval${lines.length > 1 ? 's (all needed), in approvals/*.json' : ', in approvals/*.json'}:`);
    for (const l of lines) out.push(`    ${l}`);
  }
  return out;
}

/** An invariant's result, in words: which entity stores it holds for. */
export function invariantLine(i: ProofReport['invariants'][number]): string {
  if (i.result === 'holds') return 'holds for every entity store';
  if (i.result === 'holds-deployed-only') return `holds for the deployed store only (fails for another store, in ${i.everyStore!.env})`;
  return `violated${i.store === 'deployed' ? ' on the deployed store' : ''} in ${i.env}`;
}

function side(s: ProofReport['base']): string {
  return `${s.label}${s.commit ? ` (${s.commit.slice(0, 12)})` : ''}`;
}

/** Which entity stores non-escalation holds for, in words. */
export function storesLine(r: ProofReport): string {
  const s = r.entityStores;
  const every = s.every === 'holds' ? 'holds for every entity store' : 'does not hold for every entity store';
  const deployed =
    s.deployed === 'holds'
      ? `holds for the deployed store (entities.json + registrations${s.changed ? ', changed by this PR' : ''})`
      : `does NOT hold for the deployed store (entities.json + registrations${s.changed ? ', changed by this PR' : ''})`;
  return `non-escalation ${every}; it ${deployed}`;
}

export function formatText(r: ProofReport, extra?: { digest: string; seconds?: number; queries?: number }): string {
  const out: string[] = [];
  out.push(`lilith prove: ${side(r.base)} → ${side(r.head)}`);
  out.push(HEADLINE[r.verdict]);
  out.push(
    `  ${r.environments.length} request environments${extra?.queries !== undefined ? `, ${extra.queries} solver queries` : ''} (cvc5 ${r.solver.version})${extra?.seconds !== undefined ? `, ${extra.seconds.toFixed(2)} s` : ''}`,
  );
  for (const e of r.escalations) {
    out.push(
      '',
      `${e.approved ? 'approved escalation' : 'escalation'} in ${e.env}${e.approved ? ` — ${e.approved.reason} (${e.approved.source})` : ''}`,
    );
    out.push(indent(describeCounterexample(e.counterexample)));
    if (e.baseContext) out.push(`  the base decided context: ${stringifyJsonLong(e.baseContext)}`);
    out.push(`  re-checked with cedar-wasm: head allows (${e.recheck.headReasons.join(', ')}), base denies`);
    out.push(...approvalText(e));
  }
  out.push(`  ${storesLine(r)}`);
  if (r.entityStores.provenChanges?.length)
    out.push(`  hierarchy changes proven not to widen over the deployed store: ${r.entityStores.provenChanges.join(', ')}`);
  for (const e of r.storeEscalations) {
    out.push(
      '',
      `${e.approved ? 'approved deployed-store escalation' : 'deployed-store escalation'} in ${e.env}${e.approved ? ` — ${e.approved.reason} (${e.approved.source})` : ''}`,
    );
    out.push(indent(describeCounterexample(e.counterexample)));
    if (e.baseContext) out.push(`  the base decided context: ${stringifyJsonLong(e.baseContext)}`);
    if (e.baseEntities) out.push(`  over the base store: ${stringifyJsonLong(e.baseEntities)}`);
    out.push(
      `  re-checked with cedar-wasm: head allows over the head store (${e.recheck.headReasons.join(', ')}), base denies over the base store`,
    );
    out.push(...approvalText(e));
  }
  for (const c of r.capsule) {
    out.push(
      '',
      `${c.approved ? 'approved capsule change' : 'capsule escalation'} in ${c.part}: ${c.what}${c.approved ? ` — ${c.approved.reason} (${c.approved.source})` : ''}`,
      `  approval: {"change": ${JSON.stringify(c.key)}, "reason": "…"} in approvals/*.json (or --approve ${shellWord(`change=${c.key}`)})`,
    );
  }
  for (const i of r.invariants) {
    if (i.result === 'holds') out.push(`invariant ${i.id}: holds for every entity store`);
    else if (i.result === 'holds-deployed-only') {
      out.push(
        '',
        `invariant ${i.id} (${i.file}): holds for the deployed store only (${DEPLOYED}); fails for another store, in ${i.everyStore!.env}:`,
      );
      out.push(indent(describeCounterexample(i.everyStore!.counterexample)));
      out.push('  re-checked with cedar-wasm');
    } else {
      out.push('', `invariant ${i.id} (${i.file}) VIOLATED ${i.store === 'deployed' ? 'on the deployed store ' : ''}in ${i.env}`);
      out.push(indent(describeCounterexample(i.counterexample!)));
      out.push('  re-checked with cedar-wasm');
    }
  }
  if (r.warnings.length) {
    out.push('', 'warnings:');
    for (const w of r.warnings) out.push(`  ${w.kind}: ${w.policy} (${w.file}) — ${w.detail}`);
  }
  out.push('', 'assumptions:');
  for (const a of r.assumptions) out.push(`  - ${a}`);
  if (extra) out.push('', `report sha256: ${extra.digest}`);
  return out.join('\n') + '\n';
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

function mdApproval(f: Finding): string[] {
  const out: string[] = [];
  if (f.approval.witness?.length) out.push(`Widened by (the witness shows): ${f.approval.witness.map((k) => `\`${k}\``).join(', ')}`, '');
  const lines = approvalLines(f);
  if (!f.approved && lines.length) {
    out.push(`Approval${lines.length > 1 ? 's (all needed)' : ''} in \`approvals/*.json\`:`, '');
    for (const l of lines) out.push(`- \`${l}\``);
    out.push('');
  }
  return out;
}

function mdCx(cx: NonNullable<ProofReport['invariants'][number]['counterexample']>): string {
  return ['```', describeCounterexample(cx), '```'].join('\n');
}

export function formatMarkdown(r: ProofReport, extra?: { digest: string }): string {
  const icon = r.verdict === 'proven' ? '✅' : r.verdict === 'approved' ? '⚠️' : '❌';
  const out: string[] = [`<!-- lilith-prove -->`, `### ${icon} Lilith policy proof: ${r.verdict}`, '', HEADLINE[r.verdict] + '.', ''];
  out.push(
    `Base \`${side(r.base)}\` → head \`${side(r.head)}\` · ${r.environments.length} request environments · cvc5 ${r.solver.version}`,
    '',
  );
  if (r.escalations.length) {
    out.push('#### Escalations', '');
    for (const e of r.escalations) {
      out.push(`**${e.env}**${e.approved ? ` — approved: ${e.approved.reason} (\`${e.approved.source}\`)` : ''}`, '');
      out.push(mdCx(e.counterexample), '');
      out.push(`Re-checked with cedar-wasm: head allows (${e.recheck.headReasons.map((x) => `\`${x}\``).join(', ')}), base denies.`, '');
      out.push(...mdApproval(e));
    }
  }
  out.push(`Entity stores: ${storesLine(r)}.`, '');
  if (r.storeEscalations.length) {
    out.push('#### Escalations over the deployed store (entities.json + registrations)', '');
    for (const e of r.storeEscalations) {
      out.push(`**${e.env}**${e.approved ? ` — approved: ${e.approved.reason} (\`${e.approved.source}\`)` : ''}`, '');
      out.push(mdCx(e.counterexample), '');
      if (e.baseEntities) out.push(`Base store: \`${stringifyJsonLong(e.baseEntities)}\``, '');
      out.push(
        `Re-checked with cedar-wasm: head allows over the head store (${e.recheck.headReasons.map((x) => `\`${x}\``).join(', ')}), base denies over the base store.`,
        '',
      );
      out.push(...mdApproval(e));
    }
  }
  if (r.capsule.length) {
    out.push(
      '#### Capsule changes (lilith.json, entities.json)',
      '',
      '| file | what widened | approval key | approved |',
      '|---|---|---|---|',
    );
    for (const c of r.capsule)
      out.push(`| \`${c.part}\` | ${c.what.replace(/\|/g, '\\|')} | \`${c.key}\` | ${c.approved ? `✅ ${c.approved.reason}` : '❌'} |`);
    out.push('');
  }
  out.push('#### Invariants', '', '| invariant | file | result |', '|---|---|---|');
  for (const i of r.invariants)
    out.push(`| \`${i.id}\` | \`${i.file}\` | ${i.result === 'violated' ? '❌' : i.result === 'holds' ? '✅' : '⚠️'} ${invariantLine(i)} |`);
  out.push('');
  for (const i of r.invariants.filter((x) => x.counterexample))
    out.push(
      `Counterexample for \`${i.id}\`${i.store === 'deployed' ? ' (over the deployed store)' : ''}:`,
      '',
      mdCx(i.counterexample!),
      '',
    );
  for (const i of r.invariants.filter((x) => x.everyStore))
    out.push(
      `\`${i.id}\` holds for the deployed store (${DEPLOYED}) only; a store where it fails:`,
      '',
      mdCx(i.everyStore!.counterexample),
      '',
    );
  if (r.warnings.length) {
    out.push('#### Warnings', '');
    for (const w of r.warnings) out.push(`- **${w.kind}** \`${w.policy}\` (\`${w.file}\`): ${w.detail}`);
    out.push('');
  }
  out.push('<details><summary>Assumptions</summary>', '');
  for (const a of r.assumptions) out.push(`- ${a}`);
  out.push('', '</details>');
  if (extra) out.push('', `Report sha256: \`${extra.digest}\``);
  return out.join('\n') + '\n';
}
