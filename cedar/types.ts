// The decision interface every Cedar engine implements (cedar-wasm, the compiled
// fast engine). Synchronous: a decision never waits on I/O.

export type CedarValue =
  | string
  | number
  | bigint
  | boolean
  | CedarValue[]
  | { __entity: EntityUid }
  | { __extn: { fn: string; arg: string } }
  | { [key: string]: CedarValue };

export interface EntityUid {
  type: string;
  id: string;
}

export interface Entity {
  uid: EntityUid;
  attrs: Record<string, CedarValue>;
  parents: EntityUid[];
}

export interface AuthzRequest {
  principal: EntityUid;
  action: EntityUid;
  resource: EntityUid;
  context: Record<string, CedarValue>;
  /** Request-specific entities, merged over the capsule's static entities. */
  entities?: Entity[];
}

export interface Decision {
  decision: 'allow' | 'deny';
  /** Ids (@id annotation, else policyN) of the determining policies. */
  reasons: string[];
  /** Policies that errored during evaluation, as "policyId: message". */
  errors: string[];
}

/** A policy set, schema and static entities compiled for fast repeated decisions. */
export interface Authorizer {
  readonly engine: 'wasm' | 'fast';
  /**
   * Set when the compiled engine was asked for but could not take the policy set
   * (a compiler bug: it compiles all of Cedar 4.x) and cedar-wasm answers instead.
   */
  readonly fallbackReason?: string;
  isAuthorized(req: AuthzRequest): Decision;
  /** Release WASM-side state. The authorizer must not be used after. */
  dispose(): void;
}

/** Everything an engine is built from; taken from a verified capsule or a policy directory. */
export interface PolicyBundle {
  /** File name → Cedar policy text; @id annotations name policies. */
  policies: Record<string, string>;
  schema: string;
  entities: Entity[];
  /**
   * The cedar-wasm parse of `policies` and `schema` (engine/prepare.ts), made
   * ahead, e.g. on the verification worker, so building an engine on the event
   * loop skips it. Must come from this same bundle.
   */
  prepared?: PreparedBundle;
}

export interface PreparedBundle {
  /** splitPolicies(policies). */
  policies: import('./policy-set.js').NamedPolicy[];
  /** cedar-wasm's schemaToJsonWithResolvedTypes(schema) answer. */
  schemaJson: unknown;
}
