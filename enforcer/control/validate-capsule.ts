// The content checks a signed capsule must pass before it may become policy: the
// same strict Cedar validation CI runs (`lilith validate`). A signature vouches for
// who built the capsule, not that Cedar evaluates its policies as written: a forbid
// that fails strict validation (a misspelt context attribute) raises an error at
// evaluation, Cedar skips an erroring policy, and the capsule fails open. Entities
// of types the schema does not declare (or with undeclared attributes or parents)
// would be read by policies the validator never saw them against. A lilith.json that
// does not fit the policies and entities (a taint label a forbid tests but the config
// never sets, a group no entity defines) silently disarms what it names.
import { CapsuleError, type CapsulePayload } from '../../capsule/index.js';
import { checkConfig } from '../../capsule/config-check.js';
import { crossCheckConfig, unknownTaintLabels } from '../../capsule/config-cross-check.js';
import { createAuthorizer, withExactLongs, type EngineName } from '../../cedar/index.js';
import { PolicySetError, splitPolicies } from '../../cedar/policy-set.js';
import * as cedar from '../../cedar/wasm-loader.js';

/** How many findings a refusal names (the first ones; the count says how many there were). */
const NAMED = 5;

type Content = Pick<CapsulePayload, 'policies' | 'invariants' | 'schema' | 'entities' | 'config'>;

function summarize(what: string, messages: string[]): string {
  const more = messages.length > NAMED ? ` (and ${messages.length - NAMED} more)` : '';
  return `${what}: ${messages.slice(0, NAMED).join('; ')}${more}`;
}

function messageOf(e: { message: string; help?: string | null }): string {
  return e.help ? `${e.message} (${e.help})` : e.message;
}

/**
 * Throws CapsuleError 'invalid_policies' when the schema does not parse or any
 * enforced policy or invariant fails strict validation against it (warnings pass,
 * as in CI), and 'invalid_entities' when the static entities do not conform to
 * the schema, and 'invalid_config' when lilith.json (once it passes checkConfig, which
 * activation refuses separately as bad_config) names taint labels, zones or groups the
 * policies and entities do not agree with — the checks `lilith validate` runs in CI.
 * Returns normally when the capsule's content is valid.
 */
export function validateCapsule(content: Content): void {
  const schema = cedar.checkParseSchema(content.schema);
  if (schema.type === 'failure')
    throw new CapsuleError('invalid_policies', summarize('the schema does not parse', schema.errors.map(messageOf)));
  let named;
  try {
    named = splitPolicies({ ...content.policies, ...content.invariants });
  } catch (err) {
    if (err instanceof PolicySetError) throw new CapsuleError('invalid_policies', `policies do not parse: ${err.message}`);
    throw err;
  }
  if (named.length) {
    const answer = cedar.validate({
      validationSettings: { mode: 'strict' },
      schema: content.schema,
      policies: { staticPolicies: Object.fromEntries(named.map((p) => [p.id, p.text])) },
    });
    if (answer.type === 'failure') throw new CapsuleError('invalid_policies', summarize('validation failed', answer.errors.map(messageOf)));
    if (answer.validationErrors.length)
      throw new CapsuleError(
        'invalid_policies',
        summarize(
          `${answer.validationErrors.length} strict-validation error(s)`,
          answer.validationErrors.map((v) => `policy "${v.policyId}": ${messageOf(v.error)}`),
        ),
      );
  }
  // Entity Longs beyond 2^53 are BigInts (capsule/payload.ts reads them exactly).
  const entities = withExactLongs(cedar.checkParseEntities, { entities: content.entities as never, schema: content.schema });
  if (entities.type === 'failure')
    throw new CapsuleError('invalid_entities', summarize('entities do not conform to the schema', entities.errors.map(messageOf)));
  if (checkConfig(content.config).length) return; // bad_config, refused by activation on its own
  const misfits = [
    ...unknownTaintLabels(named, content.config).map((i) => i.message),
    ...crossCheckConfig(content.config, content.entities).map((i) => `lilith.json ${i.path}: ${i.message}`),
  ];
  if (misfits.length) throw new CapsuleError('invalid_config', summarize('lilith.json does not fit the capsule', misfits));
}

/** `verified`, once its content passed validateCapsule (which throws otherwise). */
export function validated<T extends { payload: Content }>(verified: T): T {
  validateCapsule(verified.payload);
  return verified;
}

export interface ContentRefusal {
  code: 'bad_config' | 'invalid_policies' | 'invalid_entities' | 'invalid_config' | 'engine_build';
  reason: string;
}

/**
 * Every content check activation runs, for `lilith verify`: lilith.json, strict
 * validation, entities and lilith.json against them, then the engine build. Null when all pass.
 */
export function contentRefusal(payload: CapsulePayload, engine: EngineName = 'fast'): ContentRefusal | null {
  const issues = checkConfig(payload.config);
  if (issues.length)
    return {
      code: 'bad_config',
      reason: summarize(
        'lilith.json in the capsule is invalid',
        issues.map((i) => `${i.path || '/'}: ${i.message}`),
      ),
    };
  try {
    validateCapsule(payload);
  } catch (err) {
    if (
      err instanceof CapsuleError &&
      (err.code === 'invalid_policies' || err.code === 'invalid_entities' || err.code === 'invalid_config')
    )
      return { code: err.code, reason: err.message };
    throw err;
  }
  try {
    createAuthorizer({ policies: payload.policies, schema: payload.schema, entities: payload.entities }, engine, {
      log: () => {},
    }).dispose();
  } catch (err) {
    return { code: 'engine_build', reason: `policy set does not build: ${(err as Error).message}` };
  }
  return null;
}
