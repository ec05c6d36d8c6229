// Response inspection, kept apart from the relay that moves the bytes. The relay
// hands each decoded body piece to an inspector after the piece has been relayed;
// an inspector only reads (it never alters, holds or delays a response) and feeds
// what it finds to taint classification:
// - MCP responses: JSON-RPC results in a text/event-stream (SSE `message` events)
//   or in a JSON body, for the request ids that asked for data;
// - permitted plain HTTP: text-like bodies run the content detectors.
// Compressed bodies pass uninspected (documented limit).
import type { HttpHead } from '../protocols/http1.js';
import { header, headerTokens } from '../protocols/http1.js';
import { idKey, parseJsonRpc, SseParser } from '../protocols/mcp.js';
import type { Decider, DecisionResult } from '../decide.js';

/** Reads a response body as the relay passes it on. */
export interface ResponseInspector {
  /** One decoded body piece (chunked framing removed), already relayed to the client. */
  inspect(d: Buffer): void;
  /** The body has ended (complete, or the upstream closed a read-until-close body). */
  finish?(): void;
}

/** What a permitted MCP exchange tells the inspection of its response. */
export interface McpReplyScope {
  decision: DecisionResult;
  /** The session the request named; the response may name one instead (Mcp-Session-Id on initialize). */
  session?: string;
  /** JSON-RPC ids of requests that read data (tool calls, resources, prompts); 'all' for server→client streams. */
  dataIds: Set<string | number> | 'all';
}

const TEXT_LIKE = /^(text\/|application\/(json|xml|x-www-form-urlencoded|javascript|x-pem-file|x-ndjson)|[^;]*\+json|[^;]*\+xml)/;
/** Text kept from the previous piece, so a detector match split across reads is still seen. */
const TEXT_OVERLAP = 1024;

function isCompressed(head: HttpHead): boolean {
  return headerTokens(head, 'content-encoding').some((e) => e !== 'identity');
}

/**
 * The inspector for an MCP response, or null when the body cannot be read
 * (compressed, or neither JSON nor an event stream). A session id in the
 * response head opens that session's taint state first, inspected or not.
 */
export function inspectMcpResponse(scope: McpReplyScope, head: HttpHead, decider: Decider, maxBodyBytes: number): ResponseInspector | null {
  const sid = header(head, 'mcp-session-id');
  if (sid !== undefined && scope.decision.agent) decider.taint.openMcp(scope.decision.agent.spiffeId, sid);
  if (isCompressed(head)) return null;
  const session = scope.session ?? sid;
  const ct = header(head, 'content-type')?.toLowerCase() ?? '';
  if (ct.startsWith('text/event-stream')) return new McpEventStreamInspector(scope, session, decider, maxBodyBytes);
  if (ct.startsWith('application/json')) return new McpJsonInspector(scope, session, decider, maxBodyBytes);
  return null;
}

/** The inspector for a permitted plain HTTP response, or null when it is not uncompressed text. */
export function inspectTextResponse(
  decision: DecisionResult,
  head: HttpHead,
  decider: Decider,
  maxBodyBytes: number,
): ResponseInspector | null {
  if (!decision.snapshot || !decision.agent) return null;
  if (!TEXT_LIKE.test((header(head, 'content-type') ?? '').toLowerCase())) return null;
  if (isCompressed(head)) return null;
  return new TextInspector(decision, decider, maxBodyBytes);
}

/** Feeds the results of data-reading requests, and every server notification/request, in one JSON-RPC payload to taint classification. */
function taintFromReplies(text: string, scope: McpReplyScope, session: string | undefined, decider: Decider): void {
  // Parsing and re-serialising is the costly part of inspecting a reply; a text in which
  // no detector could find anything (no hint of any) cannot taint, parsed or not.
  if (!decider.mayTaintFromJson(scope.decision, text)) return;
  const parsed = parseJsonRpc(text);
  if (!parsed.ok) return;
  const ids = scope.dataIds;
  for (const m of parsed.messages) {
    // A server's notification or request (logging, progress, sampling) carries data to the
    // agent like a result does, whatever request it rides with: its params are inspected too.
    if (m.method !== undefined && m.params !== undefined) {
      decider.taintFromResponse(scope.decision, JSON.stringify(m.params), session);
      continue;
    }
    if (m.result === undefined) continue;
    if (ids !== 'all' && (m.id === undefined || m.id === null || !ids.has(idKey(m.id)))) continue;
    decider.taintFromResponse(scope.decision, JSON.stringify(m.result), session);
  }
}

/** text/event-stream: every `message` event carries one JSON-RPC payload; oversized events are skipped. */
class McpEventStreamInspector implements ResponseInspector {
  readonly #sse: SseParser;

  constructor(scope: McpReplyScope, session: string | undefined, decider: Decider, maxBodyBytes: number) {
    this.#sse = new SseParser((e) => e.event === 'message' && taintFromReplies(e.data, scope, session, decider), maxBodyBytes);
  }

  inspect(d: Buffer): void {
    this.#sse.push(d);
  }
}

/** application/json: the whole body is one payload, read at the end; a body over the limit is not read. */
class McpJsonInspector implements ResponseInspector {
  readonly #scope: McpReplyScope;
  readonly #session: string | undefined;
  readonly #decider: Decider;
  readonly #maxBodyBytes: number;
  readonly #parts: Buffer[] = [];
  #size = 0;

  constructor(scope: McpReplyScope, session: string | undefined, decider: Decider, maxBodyBytes: number) {
    this.#scope = scope;
    this.#session = session;
    this.#decider = decider;
    this.#maxBodyBytes = maxBodyBytes;
  }

  inspect(d: Buffer): void {
    this.#size += d.length;
    // No copy: a socket read's buffer is never reused, so the slice stays intact.
    if (this.#size <= this.#maxBodyBytes) this.#parts.push(d);
  }

  finish(): void {
    if (this.#size > this.#maxBodyBytes) return;
    // A body in one read (the usual case) is decoded in place, not copied first.
    const body = this.#parts.length === 1 ? this.#parts[0] : Buffer.concat(this.#parts);
    taintFromReplies(body.toString('utf8'), this.#scope, this.#session, this.#decider);
  }
}

/** Text bodies: the content detectors see the first max_body_bytes, piece by piece with an overlap. */
class TextInspector implements ResponseInspector {
  readonly #decision: DecisionResult;
  readonly #decider: Decider;
  readonly #maxBodyBytes: number;
  #seen = 0;
  #tail = '';

  constructor(decision: DecisionResult, decider: Decider, maxBodyBytes: number) {
    this.#decision = decision;
    this.#decider = decider;
    this.#maxBodyBytes = maxBodyBytes;
  }

  inspect(d: Buffer): void {
    if (this.#seen >= this.#maxBodyBytes) return;
    const part = d.subarray(0, this.#maxBodyBytes - this.#seen);
    this.#seen += part.length;
    const text = this.#tail + part.toString('latin1');
    this.#decider.taintFromResponse(this.#decision, text);
    this.#tail = text.slice(-TEXT_OVERLAP);
  }
}
