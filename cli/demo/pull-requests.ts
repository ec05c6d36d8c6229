// Step 2 (and the change step 6 releases): pull requests as branches of the
// policy repository, each through the CI proof gate exactly as
// .github/workflows/policy-gate.yml runs it (`lilith prove --base main --head
// BRANCH --format markdown --out proof.json`). Proven branches are merged.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoContext, GateOutcome } from './context.js';
import { detail, say, skipped } from './narrate.js';
import { git, lilith } from './shell.js';

export interface PullRequest {
  pr: number;
  branch: string;
  title: string;
  /** Edits the policy directory of the work tree. */
  edit(policies: string): Promise<void>;
}

const SHELL_GUARD = 'when { context.arguments has command && !(context.arguments.command like "*curl*") };';

/** Looks like a tidy-up; drops the guard that keeps `curl` out of the coding agents' shell. */
export const ESCALATING_PR: PullRequest = {
  pr: 1,
  branch: 'pr/1-simplify-shell-rule',
  title: 'Simplify the coding agents’ shell rule',
  async edit(policies) {
    const file = join(policies, 'mcp.cedar');
    const text = await readFile(file, 'utf8');
    // Another policy set (--policies) may not have the rule: widen with a new permit instead.
    const next = text.includes(SHELL_GUARD)
      ? text.replace(SHELL_GUARD, 'when { context.arguments has command };')
      : `${text}\n@id("coding-agents-shell-any")\npermit (principal in AgentGroup::"coding", action == Action::"run_command", resource in Zone::"approved-mcp");\n`;
    await writeFile(file, next);
  },
};

/** Adds `policy` (after a newline) to the end of the policy set's mcp.cedar. */
async function appendPolicy(policies: string, policy: string): Promise<void> {
  const file = join(policies, 'mcp.cedar');
  await writeFile(file, `${await readFile(file, 'utf8')}\n${policy}`);
}

/** A tightening: no agent writes under .ssh. */
export const SAFE_PR: PullRequest = {
  pr: 2,
  branch: 'pr/2-no-ssh-writes',
  title: 'Agents never write under .ssh',
  edit: (policies) =>
    appendPolicy(
      policies,
      `// A planted authorized_keys is a way back in.
@id("no-ssh-writes")
forbid (principal, action == Action::"write_file", resource)
when { context.arguments has path && context.arguments.path like "*/.ssh/*" };
`,
    ),
};

/** Released while the agent runs (step 6): a session that read credentials reads nothing more. */
export const QUARANTINE_PR: PullRequest = {
  pr: 3,
  branch: 'pr/3-credentials-quarantine',
  title: 'Quarantine sessions that read credentials',
  edit: (policies) =>
    appendPolicy(
      policies,
      `// Once a session has read credentials it may read nothing more.
@id("credentials-quarantine")
forbid (principal, action in [Action::"read_file", Action::"list_directory", Action::"search_docs", Action::"fetch_report"], resource)
when { context.taint.contains("CREDENTIALS") };
`,
    ),
};

export async function openPullRequest(ctx: DemoContext, pr: PullRequest): Promise<string> {
  await git(ctx.repo, ['checkout', '-q', '-b', pr.branch, 'main']);
  await pr.edit(join(ctx.repo, 'policies'));
  await git(ctx.repo, ['commit', '-q', '-am', pr.title]);
  const diff = await git(ctx.repo, ['diff', '--unified=1', 'main', pr.branch, '--', 'policies']);
  await git(ctx.repo, ['checkout', '-q', 'main']);
  return diff;
}

/** The gate on one PR; merges it when proven. The PR comment is printed as the workflow would post it. */
export async function gateAndMerge(ctx: DemoContext, pr: PullRequest, opts: { showDiff: boolean }): Promise<GateOutcome> {
  const diff = await openPullRequest(ctx, pr);
  say(`   PR #${pr.pr} "${pr.title}" (branch ${pr.branch})`);
  if (opts.showDiff)
    detail(
      diff
        .split('\n')
        .filter((l) => /^[-+@]/.test(l) && !/^(---|\+\+\+)/.test(l))
        .join('\n'),
      6,
    );
  const report = join(ctx.work, 'gate', `pr-${pr.pr}.json`);
  const outcome: GateOutcome = { pr: pr.pr, branch: pr.branch, title: pr.title, exit: -1, report, merged: false };
  if (ctx.can.gate) {
    skipped(`the proof gate on PR #${pr.pr}`, ctx.can.gate);
    ctx.outcome.skipped.push({ what: `proof gate on PR #${pr.pr}`, why: ctx.can.gate });
  } else {
    say(`   $ lilith prove --base main --head ${pr.branch} --format markdown --out gate/pr-${pr.pr}.json`);
    const t0 = Date.now();
    const r = await lilith(['prove', '--repo', ctx.repo, '--base', 'main', '--head', pr.branch, '--format', 'markdown', '--out', report]);
    outcome.exit = r.exitCode;
    say(`   exit ${r.exitCode} after ${((Date.now() - t0) / 1000).toFixed(1)} s; the PR comment:`);
    detail(prComment(r.stdout || r.stderr), 6);
  }
  // Unproven (no cvc5) is merged only because the demo must go on; it says so.
  if (outcome.exit === 0 || (ctx.can.gate && pr !== ESCALATING_PR)) {
    await git(ctx.repo, ['merge', '-q', '--no-ff', pr.branch, '-m', `Merge pull request #${pr.pr} from ${pr.branch}`]);
    outcome.merged = true;
    say(`   merged into main (${await git(ctx.repo, ['rev-parse', '--short=12', 'HEAD'])})${ctx.can.gate ? ' WITHOUT a proof' : ''}`);
  } else say(`   not merged: the check fails (exit ${outcome.exit})`);
  ctx.outcome.gate.push(outcome);
  return outcome;
}

/** The comment without its collapsed assumptions and the HTML marker. */
function prComment(markdown: string): string {
  return markdown
    .replace(/<details>[\s\S]*?<\/details>\n*/g, '')
    .replace(/<!--.*?-->\n?/g, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
