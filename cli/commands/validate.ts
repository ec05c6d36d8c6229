// `lilith validate [DIR]`: checks a policy repository (Cedar policies and
// invariants in strict mode against the schema, entities.json, lilith.json).
import { stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { PolicySourceError, readPolicyDir } from '../../pipeline/policy-source.js';
import { formatDiagnostic, validatePolicySource } from '../../pipeline/validate.js';

export const summary = 'validate policies, invariants, entities and lilith.json (Cedar strict mode)';

export const usage = `usage: lilith validate [DIR] [--format text|github] [--quiet]

Validates the policy repository in DIR (default ./policies):
  *.cedar and invariants/*.cedar  parsed and validated against schema.cedarschema
                                  (strict mode); every policy needs a unique @id
  entities.json                   checked against the schema
  lilith.json                     JSON Schema (capsule/lilith.schema.json) and
                                  cross-field rules

Output: one line per finding, "file:line:col: message"; with --format github,
GitHub Actions annotations ("::error file=…,line=…,col=…::message").

Exit status: 0 clean (warnings allowed), 1 findings, 2 usage or I/O error.
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      { format: { type: 'string', default: 'text' }, quiet: { type: 'boolean', short: 'q' } },
      usage,
    );
    if (positionals.length > 1) throw new UsageError(`expected at most one directory\n\n${usage.trimEnd()}`);
    const format = values.format;
    if (format !== 'text' && format !== 'github') throw new UsageError(`--format must be text or github\n\n${usage.trimEnd()}`);
    const dir = positionals[0] ?? 'policies';
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) {
      process.stderr.write(`lilith validate: ${dir}: not a directory\n`);
      return 2;
    }
    let src;
    try {
      src = await readPolicyDir(dir);
    } catch (err) {
      if (!(err instanceof PolicySourceError)) throw err;
      // A directory without schema/config/policies is a broken repository, not a usage error.
      const line = `${relative(process.cwd(), dir) || '.'}: ${err.message}`;
      process.stdout.write(format === 'github' ? `::error file=${dir}::${err.message}\n` : `${line}\n`);
      return 1;
    }
    const report = validatePolicySource(src);
    for (const d of report.diagnostics) {
      const label = relative(process.cwd(), join(dir, d.file)) || d.file;
      process.stdout.write(formatDiagnostic(d, label, format) + '\n');
    }
    if (!values.quiet) {
      const counts = `${report.policyIds.length} policies, ${report.invariantIds.length} invariants`;
      const verdict = report.errorCount === 0 ? 'ok' : `${report.errorCount} error(s)`;
      const warn = report.warningCount ? `, ${report.warningCount} warning(s)` : '';
      process.stderr.write(`lilith validate: ${dir}: ${counts}: ${verdict}${warn}\n`);
    }
    return report.errorCount === 0 ? 0 : 1;
  });
}
