// One policy decision: read the active snapshot once, resolve the agent under
// its registrations, build the request in the schema's shape (taint included),
// evaluate, apply taint on allow, and emit exactly one audit event.
import type { AuditSink, DecisionAuditEvent } from '../audit/event.js';
import type { CedarValue, Decision, Entity, EntityUid } from '../../cedar/types.js';
import { recordDecision, recordPolicyDecision } from './metrics.js';
import type { ResolvedIdentity } from '../../identity/index.js';
import type { Registration } from '../../capsule/config.js';
import { compiledRegistrations, formatDestination, type Destination, type Origin } from './origin.js';
import type { PolicySnapshot, SnapshotSource } from '../control/index.js';
import { classifiersFor, type Classifiers } from './taint/classify.js';
import { maskHex, maskLabels, maskToLong } from './taint/mask.js';
import type { TaintSessions } from './taint/sessions.js';

export type Protocol = DecisionAuditEvent['protocol'];

export interface Agent {
  spiffeId: string;
  groups: string[];
}

/** What a protocol handler asks: built against the snapshot the decision uses. */
export interface RequestSpec {
  action: string;
  resource: EntityUid;
  /** Context without taint/data_touched; decide() adds those to this object in place, so build a fresh one per call. */
  context: Record<string, CedarValue>;
  findings?: string[];
  /** Set when the request cannot be decided (malformed input): deny with this reason, no policy evaluated. */
  refuse?: string;
  /** Taint bits the permitted traffic brings in (classifiers on tool, arguments, upstream). */
  taintOnAllow?: (c: Classifiers) => bigint;
}

export interface DecisionResult {
  allowed: boolean;
  action: string;
  resource: EntityUid;
  policies: string[];
  errors: string[];
  reason?: string;
  agent: Agent | null;
  snapshot: PolicySnapshot | null;
}

export interface DecideInput {
  origin: Origin | null;
  protocol: Protocol;
  mcpSession?: string;
  build: (snap: PolicySnapshot, agent: Agent) => RequestSpec;
  /** Used in the audit event when no request could be built (no capsule, unknown identity). */
  fallback: { action: string; resource: EntityUid };
}

export const uidText = (u: EntityUid) => `${u.type}::${JSON.stringify(u.id)}`;

const uidTexts = new WeakMap<EntityUid, string>();

/** uidText, remembered per uid object (a relay reuses one while a connection names the same resource). */
function uidTextOf(u: EntityUid): string {
  let text = uidTexts.get(u);
  if (text === undefined) uidTexts.set(u, (text = uidText(u)));
  return text;
}

/** Cached per snapshot: tool action names the engine knows (used when the snapshot carries no schema text). */
const probed = new WeakMap<object, Map<string, boolean>>();

/**
 * Host::"<name>" for one connection: the same frozen object while its requests name the same
 * host, so the decision's caches (audit text, upstream taint bits, the connection's last request)
 * find it by identity instead of hashing the name again.
 */
export class HostUids {
  #last: EntityUid | null = null;

  of(name: string): EntityUid {
    if (this.#last?.id !== name) this.#last = Object.freeze({ type: 'Host', id: name });
    return this.#last;
  }
}

export class Decider {
  constructor(
    private readonly snapshots: SnapshotSource,
    readonly taint: TaintSessions,
    private readonly audit: AuditSink,
  ) {}

  agentOf(snap: PolicySnapshot, origin: Origin | null): Agent | null {
    if (!origin) return null;
    const id = origin.identify(compiledRegistrations(snap.config.registrations ?? []));
    return id ? agentFor(id) : null;
  }

  /** The key an origin's per-agent budgets are counted under (its SPIFFE ID under the active capsule). */
  agentKey(origin: Origin | null): string {
    const snap = this.snapshots.get();
    return (snap && this.agentOf(snap, origin)?.spiffeId) || 'unknown identity';
  }

  /** Whether `tool` names an action declared in the snapshot's schema. */
  isDeclaredAction(snap: PolicySnapshot, tool: string, declared: Set<string> | null, agent: Agent): boolean {
    if (declared) return declared.has(tool);
    let known = probed.get(snap);
    if (!known) probed.set(snap, (known = new Map()));
    const hit = known.get(tool);
    if (hit !== undefined) return hit;
    const answer = safeAuthorize(snap, {
      principal: { type: 'Agent', id: agent.spiffeId },
      action: { type: 'Action', id: tool },
      resource: { type: 'MCPServer', id: '-' },
      context: { taint: [], data_touched: 0, tool, arguments: {} },
    });
    const exists = !answer.errors.some((e) => /does not exist in the supplied schema|not declared/.test(e));
    if (known.size < 4096) known.set(tool, exists);
    return exists;
  }

  /**
   * A refusal no policy is asked about (input that could not be read into a request, a bound
   * exceeded, an upstream that failed): one deny audit event naming `reason`.
   */
  refuse(origin: Origin | null, protocol: Protocol, action: string, resource: EntityUid, reason: string): DecisionResult {
    return this.decide({
      origin,
      protocol,
      fallback: { action, resource },
      build: () => ({ action, resource, context: {}, refuse: reason }),
    });
  }

  decide(input: DecideInput): DecisionResult {
    const t0 = performance.now();
    const snap = this.snapshots.get();
    let agent: Agent | null = null;
    let spec: RequestSpec | null = null;
    let decision: Decision = { decision: 'deny', reasons: [], errors: [] };
    let reason: string | undefined;
    let before = 0n;
    let after = 0n;

    if (!snap) reason = 'no active capsule';
    else if (snap.config.on_expiry === 'fail_closed' && snap.expiresAt.getTime() <= Date.now())
      reason = 'active capsule expired (fail_closed)';
    else {
      agent = this.agentOf(snap, input.origin);
      if (!input.origin) reason = 'no original destination recorded for this connection';
      else if (!agent) reason = 'unknown identity';
    }
    if (snap && agent && !reason) {
      before = after = this.taint.mask(agent.spiffeId);
      try {
        spec = input.build(snap, agent);
      } catch (err) {
        reason = `request could not be built: ${(err as Error).message}`;
      }
      if (spec?.refuse) reason = spec.refuse;
      else if (spec) {
        // The connection's previous request first (compared field by field, no key to build),
        // then the snapshot's memo, then the engine.
        const last = input.origin ? lastRequests.get(input.origin) : undefined;
        const repeated = last !== undefined && last.snap === snap && last.mask === before && sameRequest(last.spec, spec);
        const key = repeated ? null : memoKey(agent, spec, before);
        const memo = key === null ? null : decisionMemo(snap);
        const remembered = repeated ? last.decision : memo?.get(key!);
        if (remembered !== undefined) decision = remembered;
        else {
          // In place, not a spread copy: copying a context object costs more than evaluating the policies.
          const context = spec.context;
          context.taint = maskLabels(before, snap.config.taint_labels ?? {}) as string[];
          context.data_touched = maskToLong(before);
          decision = safeAuthorize(snap, {
            principal: { type: 'Agent', id: agent.spiffeId },
            action: { type: 'Action', id: spec.action },
            resource: spec.resource,
            context,
            entities: agentEntities(agent),
          });
          if (memo) {
            if (memo.size >= MEMO_ENTRIES) memo.clear();
            // Shared by every request it answers (their results and audit events): frozen, so none can change it.
            Object.freeze(decision.reasons);
            Object.freeze(decision.errors);
            memo.set(key!, Object.freeze(decision));
          }
        }
        if (input.origin && !repeated && (key !== null || memo !== null))
          lastRequests.set(input.origin, { snap, mask: before, spec, decision });
        if (decision.decision === 'allow') {
          const bits = spec.taintOnAllow ? spec.taintOnAllow(classifiersFor(snap)) : 0n;
          if (bits !== 0n || input.mcpSession !== undefined) after = this.taint.or(agent.spiffeId, bits, input.mcpSession).after;
        } else if (decision.reasons.length === 0) {
          reason = decision.errors.length ? 'request failed evaluation (default deny)' : 'no policy permits this request (default deny)';
        }
      }
    }
    const allowed = decision.decision === 'allow' && !reason;
    const action = spec?.action ?? input.fallback.action;
    const resource = spec?.resource ?? input.fallback.resource;
    const latencyUs = (performance.now() - t0) * 1000;
    const dest = input.origin?.destination;
    const event: DecisionAuditEvent = {
      kind: 'decision',
      time: isoNow(),
      spiffe_id: agent?.spiffeId ?? null,
      pid: input.origin?.pid ?? null,
      destination: dest ? destinationText(dest) : null,
      protocol: input.protocol,
      action: actionText(action),
      resource: uidTextOf(resource),
      decision: allowed ? 'allow' : 'deny',
      policies: decision.reasons,
      errors: decision.errors,
      taint_before: maskHex(before),
      taint_after: maskHex(after),
      watermark: snap?.watermark ?? null,
      latency_us: Math.round(latencyUs * 10) / 10,
    };
    if (reason) event.reason = reason;
    if (spec?.findings?.length) event.findings = spec.findings;
    if (input.mcpSession !== undefined) event.mcp_session = input.mcpSession;
    this.audit.emit(event);
    recordDecision(input.protocol, event.decision, latencyUs / 1e6);
    recordPolicyDecision(event.spiffe_id, event.decision, event.policies, after !== before);
    return { allowed, action, resource, policies: decision.reasons, errors: decision.errors, reason, agent, snapshot: snap };
  }

  /**
   * False when no value inside the JSON text `json` could set a taint bit through
   * taintFromResponse (no detector could match its serialisation): then it need
   * not be parsed at all.
   */
  mayTaintFromJson(result: DecisionResult, json: string): boolean {
    if (!result.agent || !result.snapshot) return false;
    return classifiersFor(result.snapshot).mayMatchJson(json);
  }

  /** Taint from content that flowed back (response detectors); no decision, no audit event. */
  taintFromResponse(result: DecisionResult, text: string, mcpSession?: string): void {
    if (!result.agent || !result.snapshot) return;
    const c = classifiersFor(result.snapshot);
    if (!c.hasDetectors) return;
    const bits = c.responseBits(text);
    if (bits !== 0n) this.taint.or(result.agent.spiffeId, bits, mcpSession);
  }
}

let isoMs = 0;
let isoText = '';
let isoSecond = -1;
let isoPrefix = '';

/**
 * The current time in ISO form. Formatting a Date is slow enough to matter: the text up to
 * the second is made once per second, the milliseconds appended (both in UTC, so exact).
 */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    const second = Math.floor(ms / 1000);
    if (second !== isoSecond) {
      isoSecond = second;
      isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    }
    const frac = ms - second * 1000;
    isoText = `${isoPrefix}${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}Z`;
  }
  return isoText;
}

const actionTexts = new Map<string, string>();

/** `Action::"<id>"`, made once per action id (a handful per capsule). */
function actionText(id: string): string {
  let text = actionTexts.get(id);
  if (text === undefined) {
    text = `Action::${JSON.stringify(id)}`;
    if (actionTexts.size < 4096) actionTexts.set(id, text);
  }
  return text;
}

const destinations = new WeakMap<Destination, string>();

/** The audit form of a connection's destination, made once per connection. */
function destinationText(d: Destination): string {
  let text = destinations.get(d);
  if (text === undefined) destinations.set(d, (text = formatDestination(d)));
  return text;
}

// One Agent (and its request entity) per resolved identity: connections keep
// their identity object until the registrations change, so these are built
// once per connection and capsule, not per decision.
const agents = new WeakMap<ResolvedIdentity<Registration>, Agent>();
const entities = new WeakMap<Agent, Entity[]>();

function agentFor(id: ResolvedIdentity<Registration>): Agent {
  let agent = agents.get(id);
  if (agent === undefined) agents.set(id, (agent = { spiffeId: id.spiffeId, groups: id.registration.groups ?? [] }));
  return agent;
}

function agentEntities(agent: Agent): Entity[] {
  let list = entities.get(agent);
  if (list === undefined)
    entities.set(
      agent,
      (list = [
        { uid: { type: 'Agent', id: agent.spiffeId }, attrs: {}, parents: agent.groups.map((g) => ({ type: 'AgentGroup', id: g })) },
      ]),
    );
  return list;
}

// Decisions remembered per snapshot. Cedar evaluation is a pure function of the
// policies, the entities and the request; within one snapshot the first two are
// fixed (the agent's own entity comes from its registration, also the snapshot's),
// so the same request gets the same answer. A request is only remembered when its
// context holds scalars alone (plus the taint labels, which the mask stands for),
// so the key is exact and short; MCP tool arguments and other records are always evaluated.
const MEMO_ENTRIES = 4096;
const MEMO_KEY_CHARS = 1024;
const memos = new WeakMap<PolicySnapshot, Map<string, Decision>>();

function decisionMemo(snap: PolicySnapshot): Map<string, Decision> {
  let memo = memos.get(snap);
  if (memo === undefined) memos.set(snap, (memo = new Map()));
  return memo;
}

/** Per connection (its Origin), the last remembered request and its decision. */
const lastRequests = new WeakMap<Origin, { snap: PolicySnapshot; mask: bigint; spec: RequestSpec; decision: Decision }>();

/** Whether two requests are the same one: action, resource and every context value (taint and data_touched stand for the mask, compared apart). */
function sameRequest(a: RequestSpec, b: RequestSpec): boolean {
  if (a.action !== b.action || a.resource.type !== b.resource.type || a.resource.id !== b.resource.id) return false;
  let n = 0;
  for (const name in b.context) {
    if (name === 'taint' || name === 'data_touched') continue;
    const v = b.context[name];
    // Scalars only (memoKey admitted a's); a record in b is never the same here.
    if (typeof v === 'object' || v !== a.context[name]) return false;
    n++;
  }
  for (const name in a.context) if (name !== 'taint' && name !== 'data_touched') n--;
  return n === 0;
}

/** The exact key of a request, or null when it is not one to remember. */
function memoKey(agent: Agent, spec: RequestSpec, mask: bigint): string | null {
  // Every text length-prefixed and every value type-tagged: no two different requests share a key.
  const r = spec.resource;
  let key = `${agent.spiffeId.length}:${agent.spiffeId}${spec.action.length}:${spec.action}${r.type.length}:${r.type}${r.id.length}:${r.id}${maskHex(mask)}`;
  for (const name in spec.context) {
    if (name === 'taint' || name === 'data_touched') continue;
    const v = spec.context[name];
    const t = typeof v;
    key += `|${name}=`;
    if (t === 'string') key += `s${(v as string).length}:${v as string}`;
    else if (t === 'number' || t === 'bigint') key += `n${String(v)};`;
    else if (t === 'boolean') key += v ? 't' : 'f';
    else return null;
    if (key.length > MEMO_KEY_CHARS) return null;
  }
  return key;
}

/** The engine must never take the dataplane down: a throw is a deny naming the error. */
function safeAuthorize(snap: PolicySnapshot, req: Parameters<PolicySnapshot['authorizer']['isAuthorized']>[0]): Decision {
  try {
    return snap.authorizer.isAuthorized(req);
  } catch (err) {
    return { decision: 'deny', reasons: [], errors: [`engine: ${(err as Error).message}`] };
  }
}

/** Human text for a denial, used in 403 bodies and JSON-RPC errors. */
export function denialText(r: DecisionResult): string {
  if (r.reason) return r.reason;
  if (r.policies.length) return `forbidden by policy ${r.policies.join(', ')}`;
  return 'no policy permits this request (default deny)';
}
