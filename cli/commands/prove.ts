// `lilith prove`: the CI proof gate. Proves that the head policy set permits
// nothing the base denied (per request environment) and never breaks an
// invariant. Exit 0 proven (or every escalation approved), 1 escalation or
// invariant violation, 2 error, unsupported Cedar or solver unknown/timeout.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { parseApproveFlag, type Approval } from '../../pipeline/prove/approvals.js';
import { formatMarkdown, formatText } from '../../pipeline/prove/format.js';
import { runGate, type GateSide } from '../../pipeline/prove/gate.js';
import { readApprovalsDir, readPoliciesAtRef } from '../../pipeline/prove/git-revision.js';
import { exitCodeOf, reportJson } from '../../pipeline/prove/report.js';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';

export const summary = 'prove a policy change safe: non-escalation and invariants (cvc5)';

export const usage = `usage: lilith prove --base REF --head REF [--repo DIR] [--policies-path policies]
       lilith prove --base-dir DIR --head-dir DIR

Proves, for every request environment of the head schema, that the head policy
set allows nothing the base set denied, and that it never permits what an
invariant (invariants/*.cedar) forbids: for every entity store, and for the
deployed one (entities.json + registrations); each invariant is reported as
holding for every store, for the deployed store only, or violated. Every
counterexample is re-checked with cedar-wasm before it is shown.

options:
  --base REF, --head REF   git refs (branch, tag, origin/main, commit, REF~1)
  --repo DIR               git repository (default: .)
  --policies-path PATH     policy directory inside the repository (default: policies)
  --base-dir DIR, --head-dir DIR   compare two policy directories instead
  --format text|markdown|json      output (default: text)
  --out FILE               also write the JSON report (its sha256 is the capsule's proof_digest)
  --approve ACTION[:REASON]        approve escalations for an action ("*" for all); repeatable;
                                   namespaced: 'App::Action::"read":REASON' (a bare id is the un-namespaced Action)
  --approve change=KEY             approve one capsule change (lilith.json / entities.json) by its key,
                                   e.g. 'change=entities/Host::"a.example"/attrs/allowlisted' (the report names each)
  --timeout MS             per-query solver limit (default: 10000); a timeout fails the gate
  --no-hygiene             skip dead/shadowed/may-error warnings
  --jobs N                 cvc5 processes in parallel (default: 2; the report does not depend on it)
  --dump-smt FILE          write the SMT-LIB sent to cvc5 (implies --jobs 1)

Approvals can also be committed as <policies>/approvals/*.json in the head:
  {"action": "connect", "resource_type": "Host", "reason": "allow TLS on any port (SEC-123)"}

exit status: 0 proven (or all escalations approved), 1 escalation or invariant
violation, 2 error, unsupported construct, or solver unknown/timeout.
`;

export async function run(argv: string[]): Promise<number> {
  let format = 'text';
  const code = await runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        base: { type: 'string' },
        head: { type: 'string' },
        repo: { type: 'string', default: '.' },
        'policies-path': { type: 'string', default: 'policies' },
        'base-dir': { type: 'string' },
        'head-dir': { type: 'string' },
        format: { type: 'string', default: 'text' },
        out: { type: 'string' },
        approve: { type: 'string', multiple: true },
        timeout: { type: 'string', default: '10000' },
        'no-hygiene': { type: 'boolean', default: false },
        'dump-smt': { type: 'string' },
        jobs: { type: 'string', default: '2' },
        help: { type: 'boolean', default: false },
      },
      usage,
    );
    if (values.help) {
      process.stdout.write(usage);
      return 0;
    }
    format = values.format!;
    if (!['text', 'markdown', 'json'].includes(format)) throw new UsageError(`--format must be text, markdown or json\n\n${usage}`);
    const timeoutMs = Number(values.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
      throw new UsageError(`--timeout must be a positive number of milliseconds\n\n${usage}`);

    const jobs = Number(values.jobs);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError(`--jobs must be between 1 and 64\n\n${usage}`);
    const useGit = values.base !== undefined || values.head !== undefined;
    const useDirs = values['base-dir'] !== undefined || values['head-dir'] !== undefined;
    if (useGit === useDirs) throw new UsageError(`give either --base and --head (git refs) or --base-dir and --head-dir\n\n${usage}`);
    let base: GateSide;
    let head: GateSide;
    let approvals: Approval[];
    if (useGit) {
      if (!values.base || !values.head) throw new UsageError(`--base and --head are both required\n\n${usage}`);
      const repo = resolve(values.repo!);
      const [b, h] = [
        await readPoliciesAtRef(repo, values.base, values['policies-path']),
        await readPoliciesAtRef(repo, values.head, values['policies-path']),
      ];
      base = { label: values.base, commit: b.commit, source: b.source };
      head = { label: values.head, commit: h.commit, source: h.source };
      approvals = h.approvals;
    } else {
      if (!values['base-dir'] || !values['head-dir']) throw new UsageError(`--base-dir and --head-dir are both required\n\n${usage}`);
      base = { label: values['base-dir'], source: await readPolicyDir(values['base-dir']) };
      head = { label: values['head-dir'], source: await readPolicyDir(values['head-dir']) };
      approvals = await readApprovalsDir(values['head-dir']);
    }
    approvals = [...approvals, ...parseApproveFlag(values.approve ?? [])];

    let smt = '';
    const started = performance.now();
    const { report, digest, queries } = await runGate(base, head, {
      approvals,
      timeoutMs,
      hygiene: !values['no-hygiene'],
      workers: values['dump-smt'] ? 1 : jobs,
      transcript: values['dump-smt'] ? (t) => void (smt += t) : undefined,
    });
    const seconds = (performance.now() - started) / 1000;
    if (values['dump-smt']) await writeFile(values['dump-smt'], smt);
    if (values.out) await writeFile(values.out, reportJson(report));
    if (format === 'json') process.stdout.write(reportJson(report));
    else if (format === 'markdown') process.stdout.write(formatMarkdown(report, { digest }));
    else process.stdout.write(formatText(report, { digest, seconds, queries }));
    return exitCodeOf(report.verdict);
  });
  if (code === 2 && format === 'markdown') {
    process.stdout.write(
      '<!-- lilith-prove -->\n### ❌ Lilith policy proof: error\n\nThe proof gate could not run to a result (see the job log); the change is not proven safe.\n',
    );
  }
  return code;
}
