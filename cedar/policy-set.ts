// Splits policy files into individually named policies. Cedar's @id annotation
// does not name a policy by itself; we make it the policy id so decisions,
// audit events and proofs all speak of "read-file-clean", not "policy3".
import * as cedar from './wasm-loader.js';
import type { PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';

export interface NamedPolicy {
  id: string;
  file: string;
  text: string;
  json: PolicyJson;
}

export type PolicySetErrorCode =
  /** cedar-wasm cannot parse a policy file (or convert a policy to JSON). */
  | 'parse'
  /** A file declares policy templates, which Lilith does not take. */
  | 'template'
  /** Two policies share an @id. */
  | 'duplicate_id';

export class PolicySetError extends Error {
  constructor(
    readonly code: PolicySetErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(message);
  }
}

function describe(errors: { message: string }[]): string {
  return errors.map((e) => e.message).join('; ');
}

/** Parses every file, names each policy by its @id (or `<file>#<n>`), rejects duplicate ids. */
export function splitPolicies(files: Record<string, string>): NamedPolicy[] {
  const out: NamedPolicy[] = [];
  const seen = new Map<string, string>();
  for (const file of Object.keys(files).sort()) {
    const parts = cedar.policySetTextToParts(files[file]);
    if (parts.type === 'failure') throw new PolicySetError('parse', `${file}: ${describe(parts.errors)}`, file);
    if (parts.policy_templates.length) throw new PolicySetError('template', `${file}: policy templates are not supported`, file);
    parts.policies.forEach((text, index) => {
      const json = cedar.policyToJson(text);
      if (json.type === 'failure') throw new PolicySetError('parse', `${file}: ${describe(json.errors)}`, file);
      const id = json.json.annotations?.id ?? `${file}#${index}`;
      const previous = seen.get(id);
      if (previous) throw new PolicySetError('duplicate_id', `${file}: duplicate policy id "${id}" (also in ${previous})`, file);
      seen.set(id, file);
      out.push({ id, file, text, json: json.json });
    });
  }
  return out;
}

/** The id → text map cedar-wasm takes as `staticPolicies`. */
export function toStaticPolicies(policies: NamedPolicy[]): Record<string, string> {
  return Object.fromEntries(policies.map((p) => [p.id, p.text]));
}
