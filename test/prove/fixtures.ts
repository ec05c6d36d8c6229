// Policy directories for the known-answer tests: copies of the bundled
// policies with one edit each.
import { withExactLongs } from '../../cedar/wasm-exact.js';
import * as cedar from '../../cedar/wasm-loader.js';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Counterexample } from '../../pipeline/prove/counterexample.js';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { readApprovalsDir } from '../../pipeline/prove/git-revision.js';

export const BUNDLED = resolve(dirname(fileURLToPath(import.meta.url)), '../../../policies');

export class PolicyDirs {
  readonly root = mkdtempSync(join(tmpdir(), 'lilith-prove-'));
  private n = 0;

  /** A copy of the bundled policies, then `edit(dir)`. */
  make(edit: (dir: string) => void = () => {}): string {
    const dir = join(this.root, `p${this.n++}`);
    cpSync(BUNDLED, dir, { recursive: true });
    edit(dir);
    return dir;
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Replaces `from` by `to` in a file, failing loudly when `from` is absent (a stale fixture). */
export function replaceIn(dir: string, file: string, from: string | RegExp, to: string): void {
  const path = join(dir, file);
  const text = readFileSync(path, 'utf8');
  const next = text.replace(from, to);
  if (next === text) throw new Error(`fixture edit did not apply to ${file}: ${from}`);
  writeFileSync(path, next);
}

export function write(dir: string, file: string, text: string): void {
  mkdirSync(dirname(join(dir, file)), { recursive: true });
  writeFileSync(join(dir, file), text);
}

export function remove(dir: string, file: string): void {
  unlinkSync(join(dir, file));
}

export function read(dir: string, file: string): string {
  return readFileSync(join(dir, file), 'utf8');
}

/** Independent re-check of a counterexample with cedar-wasm against a policy directory. */
export function decideIn(dir: string, cx: Counterexample, files: string[]): 'allow' | 'deny' {
  const policies: Record<string, string> = {};
  for (const f of files) {
    const parts = cedar.policySetTextToParts(read(dir, f));
    if (parts.type === 'failure') throw new Error(`${f}: parse error`);
    parts.policies.forEach((p, i) => {
      policies[`${f}#${i}`] = p;
    });
  }
  const answer = withExactLongs(cedar.isAuthorized, {
    principal: cx.principal,
    action: cx.action,
    resource: cx.resource,
    context: cx.context as cedar.Context,
    policies: { staticPolicies: policies },
    entities: cx.entities as unknown as cedar.EntityJson[],
    schema: read(dir, 'schema.cedarschema'),
    validateRequest: true,
  });
  if (answer.type === 'failure') return 'deny';
  return answer.response.decision;
}

/** A valid lilith.json with no registrations, for sources over other schemas (no Agent type to register). */
export function neutralConfig(): string {
  const c = JSON.parse(read(BUNDLED, 'lilith.json')) as { registrations: unknown[] };
  c.registrations = [];
  return JSON.stringify(c);
}

/** The real gate between two policy directories, with the head's approvals (as CI runs it). */
export async function gateDirs(baseDir: string, headDir: string, opts: { hygiene?: boolean } = {}) {
  const approvals = await readApprovalsDir(headDir);
  return runGate(
    { label: 'base', source: await readPolicyDir(baseDir) },
    { label: 'head', source: await readPolicyDir(headDir) },
    { approvals, ...opts },
  );
}
