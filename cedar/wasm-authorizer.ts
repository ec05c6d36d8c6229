// The reference engine: cedar-wasm with the policy set and schema preparsed once.
import * as cedar from './wasm-loader.js';
import { randomUUID } from 'node:crypto';
import { withExactLongs } from './wasm-exact.js';
import { splitPolicies, toStaticPolicies } from './policy-set.js';
import type { Authorizer, AuthzRequest, Decision, Entity, PolicyBundle } from './types.js';

export class WasmAuthorizer implements Authorizer {
  readonly engine = 'wasm' as const;
  /** Why the compiled engine was not used, when this engine stands in for it (cedar/index.ts). */
  fallbackReason?: string;
  private readonly psetId = `pset-${randomUUID()}`;
  private readonly schemaId = `schema-${randomUUID()}`;
  private readonly staticEntities: Entity[];
  private readonly staticUids: Set<string>;

  constructor(bundle: PolicyBundle) {
    const parsed = cedar.preparsePolicySet(this.psetId, {
      staticPolicies: toStaticPolicies(bundle.prepared?.policies ?? splitPolicies(bundle.policies)),
    });
    if (parsed.type === 'failure') throw new Error(`policy set: ${parsed.errors.map((e) => e.message).join('; ')}`);
    // The schema supplies the action hierarchy (`action in Action::"egress"`) and
    // request validation: a context of the wrong shape is an error, hence a deny.
    const schema = cedar.preparseSchema(this.schemaId, bundle.schema);
    if (schema.type === 'failure') throw new Error(`schema: ${schema.errors.map((e) => e.message).join('; ')}`);
    this.staticEntities = bundle.entities;
    this.staticUids = new Set(bundle.entities.map((e) => `${e.uid.type}::${e.uid.id}`));
  }

  isAuthorized(req: AuthzRequest): Decision {
    // Request entities add to the static store; a request may not redefine a static entity.
    const extra = (req.entities ?? []).filter((e) => !this.staticUids.has(`${e.uid.type}::${e.uid.id}`));
    let answer: ReturnType<typeof cedar.statefulIsAuthorized>;
    const call: cedar.StatefulAuthorizationCall = {
      principal: req.principal,
      action: req.action,
      resource: req.resource,
      context: req.context as cedar.Context,
      preparsedPolicySetId: this.psetId,
      preparsedSchemaName: this.schemaId,
      validateRequest: true,
      entities: (extra.length ? [...this.staticEntities, ...extra] : this.staticEntities) as cedar.EntityJson[],
    };
    try {
      answer = withExactLongs(cedar.statefulIsAuthorized, call);
    } catch (err) {
      // cedar-wasm throws (instead of answering) on input it cannot take across the
      // JS boundary: refused, never passed through.
      return { decision: 'deny', reasons: [], errors: [`request: cedar-wasm cannot take this request (${(err as Error).message})`] };
    }
    if (answer.type === 'failure') {
      // Malformed request: deny, and say why.
      return { decision: 'deny', reasons: [], errors: answer.errors.map((e) => `request: ${e.message}`) };
    }
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      reasons: diagnostics.reason,
      errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    };
  }

  dispose(): void {
    // cedar-wasm keeps preparsed sets in a global map with no removal API in 4.x;
    // re-preparsing an empty set under the same id frees the policies.
    cedar.preparsePolicySet(this.psetId, { staticPolicies: {} });
  }
}
