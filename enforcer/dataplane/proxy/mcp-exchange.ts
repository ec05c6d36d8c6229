// MCP over HTTP, the deciding half. The HTTP/1 relay moves bytes and knows
// nothing of JSON-RPC; this module knows which requests are MCP, turns each
// JSON-RPC message of a held POST body into a Cedar request (tool call, resource
// read, prompt, session method) and, when one is denied, writes the JSON-RPC
// error reply the client gets instead. What it permits it hands back as the
// scope the response inspection needs (sse-inspect.ts).
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import type { PolicySnapshot } from '../../control/index.js';
import { formatDestination, type Origin } from '../origin.js';
import { header, type HttpHead } from '../protocols/http1.js';
import {
  classifyMessage,
  idKey,
  jsonRpcError,
  jsonRpcFromValue,
  PARSE_ERROR_CODE,
  POLICY_DENIED_CODE,
  type JsonRpcMessage,
  type McpCall,
} from '../protocols/mcp.js';
import { denialText, uidText, type Decider, type DecisionResult, type RequestSpec } from '../decide.js';
import { projectArguments, toolShapesFor } from './schema-shapes.js';
import { canonicalJson, type ExactJson } from '../protocols/json-exact.js';
import type { McpReplyScope } from './sse-inspect.js';

/** Methods whose results carry data from the server (their responses are inspected for taint). */
const DATA_METHODS = new Set(['tools/call', 'resources/read', 'prompts/get']);

/** The action audited when no request could be built (no capsule, unknown identity). */
const FALLBACK_ACTIONS: Record<McpCall['kind'], string> = {
  tool: 'call_tool',
  resource: 'resources/read',
  prompt: 'prompts/get',
  session: 'mcp_session',
  invalid: 'mcp_session',
};

/** The HTTP reply the client gets instead of a forwarded MCP POST. */
export interface McpRefusal {
  status: number;
  statusText: string;
  body: unknown;
}

/** A permitted MCP POST: what the response inspection needs and the body to forward (the canonical JSON of what was decided). */
export interface McpPermitted {
  scope: McpReplyScope;
  body: Buffer;
}

export function isRefusal(v: McpPermitted | McpRefusal): v is McpRefusal {
  return 'status' in v;
}

/** Decides the MCP requests of one client connection (the destination and config are fixed per connection). */
export class McpGate {
  readonly #origin: Origin | null;
  readonly #decider: Decider;
  readonly #config: LilithConfig | null;
  readonly #endpoint: () => EntityUid;
  #alias: string | null | undefined = undefined;
  #server: { snap: PolicySnapshot; uid: EntityUid } | null = null;

  constructor(origin: Origin | null, decider: Decider, config: LilithConfig | null, endpoint: () => EntityUid) {
    this.#origin = origin;
    this.#decider = decider;
    this.#config = config;
    this.#endpoint = endpoint;
  }

  /** The destination is an MCP upstream named in lilith.json: all its traffic is MCP (and audited as such). */
  get toMcpUpstream(): boolean {
    return this.#upstreamAlias() !== null;
  }

  /**
   * A request without a JSON-RPC body: GET opens a server→client event stream,
   * DELETE ends the session. Denied when `decision.allowed` is false.
   */
  decideStream(head: HttpHead): McpReplyScope {
    const session = sessionOf(head);
    const decision = this.#decide({ kind: 'session', method: `http:${head.method}` }, session);
    if (decision.allowed && head.method === 'DELETE' && session !== undefined && decision.agent)
      this.#decider.taint.closeMcp(decision.agent.spiffeId, session);
    return { decision, session, dataIds: 'all' };
  }

  /**
   * A whole POST body (`parsed`: its strict reading, null when it did not parse): every
   * message must be permitted, or the client gets JSON-RPC errors and nothing is forwarded.
   */
  decideBody(head: HttpHead, body: ExactJson | null, raw: Buffer, parseError: string | null = null): McpPermitted | McpRefusal {
    const session = sessionOf(head);
    const parsed: ReturnType<typeof jsonRpcFromValue> =
      body !== null ? jsonRpcFromValue(body.value) : { ok: false, reason: `body is not JSON: ${parseError ?? 'unparseable'}` };
    let failure = parsed.ok ? null : parsed.reason;
    let forward: Buffer | null = null;
    if (parsed.ok && body) {
      // The parsed bytes when they are the one reading of what was decided; otherwise the
      // proxy's serialisation of it, so duplicate keys and escaped names never reach a server
      // that might read them differently. Numbers keep their source text either way.
      if (body.clean) forward = raw;
      else if (!body.numbersExact) failure = `body needs re-serialising (${body.unclean}) and has a number JSON cannot re-emit exactly`;
      else forward = Buffer.from(canonicalJson(body.value), 'utf8');
    }
    if (!parsed.ok || !forward) {
      const reason = failure ?? 'unparseable body';
      this.#decide({ kind: 'invalid', reason }, session);
      return { status: 400, statusText: 'Bad Request', body: jsonRpcError(null, PARSE_ERROR_CODE, `Parse error: ${reason}`) };
    }
    const results: Array<{ m: JsonRpcMessage; r: DecisionResult }> = [];
    let denied: { m: JsonRpcMessage; r: DecisionResult } | undefined;
    for (const m of parsed.messages) {
      const x = { m, r: this.#decide(classifyMessage(m), session) };
      results.push(x);
      if (!x.r.allowed) denied ??= x;
    }
    if (denied) {
      const withIds = results.filter((x) => x.m.id !== undefined && x.m.method !== undefined);
      // The older HTTP+SSE transport answers on its event stream, not on the POST: a JSON-RPC
      // error in a 200 would never reach the caller. Refuse the POST itself (403, error in the body).
      const legacySse = header(head, 'mcp-session-id') === undefined && /[?&]sessionId=/.test(head.target);
      // Only notifications/responses: nothing to answer in JSON-RPC; say it in HTTP.
      if (withIds.length === 0 || legacySse) return { status: 403, statusText: 'Forbidden', body: denialError(denied.m, denied.r) };
      const errors = withIds.map((x) => denialError(x.m, x.r.allowed ? null : x.r));
      return { status: 200, statusText: 'OK', body: parsed.batch ? errors : errors[0] };
    }
    const dataIds = new Set<string | number>();
    for (const m of parsed.messages)
      if (m.method && DATA_METHODS.has(m.method) && m.id !== undefined && m.id !== null) dataIds.add(idKey(m.id));
    return { scope: { decision: results[0].r, session, dataIds }, body: forward };
  }

  /** Upstream alias from lilith.json whose address is this connection's original destination. */
  #upstreamAlias(): string | null {
    if (this.#alias !== undefined) return this.#alias;
    this.#alias = null;
    const d = this.#origin?.destination;
    if (!d || !this.#config) return null;
    const addr = formatDestination(d);
    for (const [alias, up] of Object.entries(this.#config.upstreams ?? {}))
      if (up.address === addr && up.kind === 'mcp') {
        this.#alias = alias;
        break;
      }
    return this.#alias;
  }

  /** The MCPServer this connection reaches, named by the deciding snapshot's upstreams. */
  #serverUid(snap: PolicySnapshot): EntityUid {
    if (this.#server?.snap === snap) return this.#server.uid;
    const addr = formatDestination(this.#origin!.destination);
    let uid: EntityUid = { type: 'MCPServer', id: addr };
    for (const [alias, up] of Object.entries(snap.config.upstreams ?? {}))
      if (up.address === addr) {
        uid = { type: 'MCPServer', id: alias };
        break;
      }
    this.#server = { snap, uid };
    return uid;
  }

  #decide(call: McpCall, session: string | undefined): DecisionResult {
    const fallbackAction = FALLBACK_ACTIONS[call.kind];
    return this.#decider.decide({
      origin: this.#origin,
      protocol: 'mcp',
      mcpSession: session,
      fallback: { action: fallbackAction, resource: this.#endpoint() },
      build: (snap, agent): RequestSpec => {
        const resource = this.#serverUid(snap);
        // Each context is built whole (a spread of a shared base object is a slow path in V8).
        let spec: RequestSpec;
        switch (call.kind) {
          case 'invalid':
            spec = { action: fallbackAction, resource, context: {}, refuse: `malformed MCP message: ${call.reason}` };
            break;
          case 'tool': {
            const shapes = toolShapesFor(snap);
            const declared = this.#decider.isDeclaredAction(snap, call.tool, shapes?.toolActions ?? null, agent);
            const args = shapes ? projectArguments(call.arguments, shapes.argumentTypes) : {};
            spec = {
              action: declared ? call.tool : 'call_tool',
              resource,
              context: { tool: call.tool, arguments: args },
              taintOnAllow: (c) => c.toolBits(call.tool, call.arguments) | c.upstreamBits(resource),
            };
            break;
          }
          // Reading a resource or a prompt: the action is the method; what it returns carries the server's taint.
          case 'resource':
            spec = {
              action: 'resources/read',
              resource,
              context: { method: 'resources/read', uri: call.uri },
              taintOnAllow: (c) => c.upstreamBits(resource),
            };
            break;
          case 'prompt':
            spec = {
              action: 'prompts/get',
              resource,
              context: { method: 'prompts/get', prompt: call.prompt },
              taintOnAllow: (c) => c.upstreamBits(resource),
            };
            break;
          case 'session':
            spec = { action: 'mcp_session', resource, context: { method: call.method } };
            break;
        }
        if (session !== undefined) spec.context.mcp_session = session;
        return spec;
      },
    });
  }
}

/** The session a request belongs to: Mcp-Session-Id, or (older HTTP+SSE transport) the POST URL's sessionId. */
function sessionOf(head: HttpHead): string | undefined {
  const h = header(head, 'mcp-session-id');
  if (h !== undefined) return h;
  const q = /[?&]sessionId=([^&#]+)/.exec(head.target);
  return q ? decodeURIComponent(q[1]) : undefined;
}

/** The JSON-RPC error answering a denied message; `r` null: the message was fine but its batch was refused. */
function denialError(m: JsonRpcMessage, r: DecisionResult | null): Record<string, unknown> {
  const message = r ? `Denied by Lilith policy: ${denialText(r)}` : 'Denied by Lilith policy: another message in this batch was denied';
  return jsonRpcError(m.id ?? null, POLICY_DENIED_CODE, message, {
    action: r ? `Action::${JSON.stringify(r.action)}` : undefined,
    resource: r ? uidText(r.resource) : undefined,
    policies: r?.policies ?? [],
    reason: r ? denialText(r) : 'batch refused',
  });
}
