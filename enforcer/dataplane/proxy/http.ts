// One client connection speaking HTTP/1.1 (plain HTTP or MCP over HTTP).
// Requests are handled one at a time in order, which makes pipelining safe:
// a pipelined request waits in the buffer until the previous response has been
// relayed. Heads are parsed; bodies stream through unchanged (MCP JSON-RPC POST
// bodies are held up to the body limit so each message can be decided first).
import net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { CedarValue, EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin } from '../origin.js';
import type { PolicySnapshot } from '../../control/snapshot.js';
import { isLoopback, normalizeIp, type LearnedNames } from '../dns/names.js';
import {
  BodyTracker,
  header,
  headerTokens,
  headerValues,
  keepAlive,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  responseFraming,
  simpleResponse,
  type HttpHead,
} from '../protocols/http1.js';
import { classifyMessage, jsonRpcError, parseJsonRpc, PARSE_ERROR_CODE, POLICY_DENIED_CODE, SseParser, type JsonRpcMessage } from '../protocols/mcp.js';
import { connectUpstream } from './relay.js';
import { denialText, uidText, type Agent, type Decider, type DecisionResult, type RequestSpec } from '../decide.js';
import { projectArguments, toolShapesFor } from './schema-shapes.js';

export interface Limits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  idleTimeoutMs: number;
}

export interface HttpDeps {
  decider: Decider;
  names: LearnedNames;
}

const DATA_METHODS = new Set(['tools/call', 'resources/read', 'prompts/get']);
const EMPTY: Buffer = Buffer.alloc(0);

interface Exchange {
  method: string;
  head: HttpHead;
  keepAlive: boolean;
  /** Set for MCP exchanges: what the response inspector needs. */
  mcp: { decision: DecisionResult; session?: string; dataIds: Set<string | number> | 'all' } | null;
  /** Set for permitted plain HTTP exchanges: text responses run the content detectors. */
  http?: DecisionResult;
  /** The proxy already answered `Expect: 100-continue` itself: the upstream's 100 is not relayed again. */
  answered100?: boolean;
}

export class HttpConnection {
  #buf: Buffer = EMPTY;
  #state: 'head' | 'req_body' | 'wait_resp' | 'closed' = 'head';
  #upstream: net.Socket | null = null;
  #upBuf: Buffer = EMPTY;
  #exchange: Exchange | null = null;
  #reqBody: BodyTracker | null = null;
  /** MCP POST body being held: raw bytes to forward, decoded bytes to parse. */
  #held: { raw: Buffer[]; decoded: Buffer[]; size: number } | null = null;
  #resp: { phase: 'head' | 'body'; tracker: BodyTracker | null; inspect: ((d: Buffer) => void) | null; finish: (() => void) | null; head: HttpHead | null } = { phase: 'head', tracker: null, inspect: null, finish: null, head: null };
  #respStarted = false;
  #clientEnded = false;
  #headTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly client: net.Socket,
    private readonly origin: Origin | null,
    private readonly deps: HttpDeps,
    private readonly limits: Limits,
    private readonly config: LilithConfig | null,
  ) {}

  start(initial: Buffer): void {
    const c = this.client;
    c.setTimeout(this.limits.idleTimeoutMs);
    c.on('timeout', () => this.#abort());
    c.on('error', () => this.#abort());
    c.on('close', () => this.#abort());
    c.on('end', () => {
      this.#clientEnded = true;
      if (this.#state === 'head' && !this.#exchange) this.#finishClient();
      else if (this.#state === 'req_body') this.#abort(); // body cut short: nothing sane to forward
      // An event stream to a client that stopped sending is a stream to nobody: end it.
      else if (this.#exchange && this.#wantsEventStream(this.#exchange)) this.#abort();
    });
    c.on('data', (d: Buffer) => {
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
      // Head and body bytes forwarded in this turn leave in one write.
      const up = this.#upstream;
      up?.cork();
      try {
        this.#pump();
      } catch (err) {
        this.#internalError(err);
      } finally {
        if (up && up.writableCorked) up.uncork();
        const now = this.#upstream;
        if (now && now !== up && now.writableCorked) now.uncork();
      }
    });
    this.#buf = initial;
    this.#pump();
    c.resume();
  }

  /** A bug must cost one connection, never the daemon: drop it and say why on stderr. */
  #internalError(err: unknown): void {
    process.stderr.write(`lilith dataplane: internal error on an HTTP connection (dropped): ${(err as Error)?.stack ?? String(err)}\n`);
    this.client.destroy();
    this.#abort();
  }

  #wantsEventStream(ex: Exchange): boolean {
    const head = this.#resp.head;
    if (head) return (header(head, 'content-type') ?? '').toLowerCase().startsWith('text/event-stream');
    return ex.method === 'GET' && headerTokens(ex.head, 'accept').some((a) => a.startsWith('text/event-stream'));
  }

  #abort(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#headTimer) clearTimeout(this.#headTimer);
    if (!this.client.destroyed) this.client.destroy();
    if (this.#upstream && !this.#upstream.destroyed) this.#upstream.destroy();
  }

  /** Ends the client connection politely after pending writes. */
  #finishClient(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#headTimer) clearTimeout(this.#headTimer);
    this.client.end();
    this.client.destroySoon();
    if (this.#upstream && !this.#upstream.destroyed) this.#upstream.end();
  }

  /** A response the proxy writes itself; the connection stays usable unless `close`. */
  #reply(buf: Buffer, close: boolean): void {
    this.client.write(buf);
    if (close || this.#clientEnded) this.#finishClient();
    else this.#state = 'head';
  }

  #replyJson(status: number, text: string, body: unknown, close: boolean): void {
    this.#reply(simpleResponse(status, text, JSON.stringify(body), 'application/json', close), close);
  }

  #pump(): void {
    while (this.#state !== 'closed') {
      if (this.#state === 'head') {
        if (!this.#buf.length) return;
        const r = parseRequestHead(this.#buf, this.limits.maxHeaderBytes);
        if (r.kind === 'need_more') {
          this.#headTimer ??= setTimeout(() => this.#slowHead(), this.limits.idleTimeoutMs);
          return;
        }
        if (this.#headTimer) clearTimeout(this.#headTimer);
        this.#headTimer = null;
        if (r.kind === 'error') {
          this.#refuseMalformed(r.reason);
          const text = r.status === 431 ? 'Request Header Fields Too Large' : r.status === 505 ? 'HTTP Version Not Supported' : 'Bad Request';
          this.#replyJson(r.status, text, { error: text.toLowerCase(), reason: r.reason }, true);
          return;
        }
        this.#buf = this.#buf.subarray(r.consumed);
        this.#startRequest(r.head);
        continue;
      }
      if (this.#state === 'req_body') {
        if (!this.#buf.length) return;
        const tracker = this.#reqBody!;
        let n: number;
        try {
          n = tracker.take(this.#buf);
        } catch (err) {
          // Malformed chunked framing mid-body: the upstream may hold a partial body; drop both.
          this.#refuseMalformed(`request body: ${(err as Error).message}`);
          this.#abort();
          return;
        }
        const part = this.#buf.subarray(0, n);
        this.#buf = this.#buf.subarray(n);
        if (this.#held) {
          this.#held.raw.push(part);
          if (tracker.seen > this.limits.maxBodyBytes) {
            this.#refuseMalformed(`MCP request body exceeds ${this.limits.maxBodyBytes} bytes`);
            this.#replyJson(413, 'Payload Too Large', { error: 'payload too large', reason: `body exceeds ${this.limits.maxBodyBytes} bytes` }, true);
            return;
          }
        } else if (part.length && !this.#upstream!.write(part)) {
          this.client.pause();
          this.#upstream!.once('drain', () => this.client.resume());
        }
        if (tracker.done) {
          this.#reqBody = null;
          if (this.#held) this.#decideMcpBody();
          else this.#state = 'wait_resp';
        }
        continue;
      }
      // wait_resp: pipelined bytes stay buffered; stop reading so a client cannot make us buffer without bound.
      if (this.#buf.length > this.limits.maxHeaderBytes) this.client.pause();
      return;
    }
  }

  #slowHead(): void {
    this.#headTimer = null;
    if (this.#state !== 'head') return;
    this.#refuseMalformed('request head not completed within the idle timeout');
    this.#replyJson(408, 'Request Timeout', { error: 'request timeout' }, true);
  }

  /** Audits a refusal of input that could not be parsed into a decidable request. */
  #refuseMalformed(reason: string): void {
    const d = this.origin?.destination;
    this.deps.decider.decide({
      origin: this.origin,
      protocol: this.#mcpAlias() !== null ? 'mcp' : 'http',
      build: () => ({ action: 'http', resource: this.#endpointUid(), context: {}, refuse: `malformed request: ${reason}` }),
      fallback: { action: 'http', resource: d ? this.#endpointUid() : { type: 'Endpoint', id: 'unknown' } },
    });
  }

  #endpoint: EntityUid | null = null;
  #endpointUid(): EntityUid {
    if (this.#endpoint) return this.#endpoint;
    const d = this.origin?.destination;
    this.#endpoint = { type: 'Endpoint', id: d ? formatDestination(d) : 'unknown' };
    return this.#endpoint;
  }

  #isMcp(head: HttpHead): boolean {
    if (this.#mcpAlias() !== null) return true;
    if (header(head, 'mcp-session-id') !== undefined || header(head, 'mcp-protocol-version') !== undefined) return true;
    const ct = header(head, 'content-type')?.toLowerCase() ?? '';
    const accept = headerTokens(head, 'accept');
    return head.method === 'POST' && ct.startsWith('application/json') && accept.some((a) => a.startsWith('text/event-stream'));
  }

  #alias: string | null | undefined = undefined;
  /** Upstream alias from lilith.json whose address is this connection's original destination (the config is fixed per connection). */
  #mcpAlias(): string | null {
    if (this.#alias !== undefined) return this.#alias;
    this.#alias = null;
    const d = this.origin?.destination;
    if (!d || !this.config) return null;
    const addr = formatDestination(d);
    for (const [alias, up] of Object.entries(this.config.upstreams ?? {}))
      if (up.address === addr && up.kind === 'mcp') {
        this.#alias = alias;
        break;
      }
    return this.#alias;
  }

  #server: { snap: PolicySnapshot; uid: EntityUid } | null = null;
  /** The MCPServer this connection reaches, named by the deciding snapshot's upstreams. */
  #mcpServer(snap: PolicySnapshot): EntityUid {
    if (this.#server?.snap === snap) return this.#server.uid;
    const addr = formatDestination(this.origin!.destination);
    let uid: EntityUid = { type: 'MCPServer', id: addr };
    for (const [alias, up] of Object.entries(snap.config.upstreams ?? {}))
      if (up.address === addr) {
        uid = { type: 'MCPServer', id: alias };
        break;
      }
    this.#server = { snap, uid };
    return uid;
  }

  #startRequest(head: HttpHead): void {
    const framing = requestFraming(head);
    const hosts = headerValues(head, 'host');
    if (framing.kind === 'error' || hosts.length > 1 || (hosts.length === 0 && head.version === '1.1')) {
      const reason = framing.kind === 'error' ? framing.reason : hosts.length > 1 ? 'more than one Host header' : 'missing Host header';
      this.#refuseMalformed(reason);
      this.#replyJson(400, 'Bad Request', { error: 'bad request', reason }, true);
      return;
    }
    const ex: Exchange = { method: head.method, head, keepAlive: keepAlive(head), mcp: null };
    if (this.#isMcp(head)) return this.#startMcp(head, ex, framing);
    const result = this.#decideHttp(head);
    if (!result.allowed) {
      // A refused request's body is never read: close instead of draining it.
      const close = framing.kind !== 'none' || !ex.keepAlive;
      this.#replyJson(403, 'Forbidden', { error: 'forbidden', policy: result.policies[0] ?? null, policies: result.policies, reason: denialText(result) }, close);
      return;
    }
    ex.http = result;
    this.#forwardHead(ex);
    if (framing.kind === 'none') this.#state = 'wait_resp';
    else {
      this.#reqBody = new BodyTracker(framing);
      this.#state = 'req_body';
    }
  }

  /** Host header (or absolute-form target) → lowercase hostname and whether it disagrees with the real destination. */
  #hostOf(head: HttpHead, agent: Agent): { host: string; mismatch: boolean; path: string } {
    let hostport = header(head, 'host') ?? '';
    let path = head.target;
    const abs = path.startsWith('/') ? null : /^https?:\/\/([^/?#]+)([^#]*)$/i.exec(head.target);
    if (abs) {
      hostport = abs[1];
      path = abs[2] || '/';
    }
    let host = hostport;
    const v6 = hostport.startsWith('[') ? /^\[([^\]]+)\](?::\d+)?$/.exec(hostport) : null;
    if (v6) host = v6[1];
    else if (hostport.includes(':')) host = hostport.replace(/:\d*$/, '');
    host = host.toLowerCase();
    if (host.endsWith('.')) host = host.slice(0, -1);
    const dest = this.origin!.destination.address;
    let mismatch: boolean;
    if (net.isIP(host)) mismatch = normalizeIp(host) !== normalizeIp(dest);
    else if (host === 'localhost') mismatch = !isLoopback(dest);
    else mismatch = !this.deps.names.namesFor(agent.spiffeId, dest).includes(host);
    return { host, mismatch, path };
  }

  #decideHttp(head: HttpHead): DecisionResult {
    return this.deps.decider.decide({
      origin: this.origin,
      protocol: 'http',
      fallback: { action: head.method, resource: this.#endpointUid() },
      build: (_snap, agent): RequestSpec => {
        const { host, mismatch, path } = this.#hostOf(head, agent);
        if (!host) return { action: head.method, resource: this.#endpointUid(), context: {}, refuse: 'malformed request: empty Host' };
        const context: RequestSpec['context'] = { method: head.method, path, port: this.origin!.destination.port, tls: false, host_mismatch: mismatch };
        const ct = header(head, 'content-type');
        if (ct !== undefined) context.content_type = ct;
        const cl = header(head, 'content-length');
        if (cl !== undefined && /^\d{1,15}$/.test(cl)) context.content_length = Number(cl);
        const ua = header(head, 'user-agent');
        if (ua !== undefined) context.user_agent = ua;
        const resource = { type: 'Host', id: host };
        return { action: head.method, resource, context, findings: mismatch ? ['host_mismatch'] : undefined, taintOnAllow: (c) => c.upstreamBits(resource) };
      },
    });
  }

  #ensureUpstream(): net.Socket {
    if (this.#upstream && !this.#upstream.destroyed && this.#upstream.writable) return this.#upstream;
    const up = connectUpstream(this.origin!.destination);
    this.#upstream = up;
    this.#upBuf = EMPTY;
    up.on('data', (d: Buffer) => {
      if (up !== this.#upstream) return;
      this.#upBuf = this.#upBuf.length ? Buffer.concat([this.#upBuf, d]) : d;
      this.#onUpstream();
    });
    up.on('end', () => up === this.#upstream && this.#upstreamEnded());
    up.on('error', (err) => up === this.#upstream && this.#upstreamFailed(err));
    up.on('close', () => up === this.#upstream && this.#upstreamEnded());
    return up;
  }

  #forwardHead(ex: Exchange): void {
    this.#exchange = ex;
    this.#resp = { phase: 'head', tracker: null, inspect: null, finish: null, head: null };
    this.#respStarted = false;
    this.#ensureUpstream().write(ex.head.raw);
  }

  #upstreamFailed(err: Error): void {
    if (this.#state === 'closed') return;
    if (this.#exchange && !this.#respStarted) {
      this.#upstream = null;
      this.#exchange = null;
      this.#replyJson(502, 'Bad Gateway', { error: 'bad gateway', reason: `upstream: ${err.message}` }, true);
    } else if (this.#exchange) {
      // Mid-response: the client must see the connection break, not a truncated success.
      this.client.resetAndDestroy();
      this.#abort();
    } else this.#upstream = null; // idle keep-alive upstream went away: reconnect on the next request
  }

  #upstreamEnded(): void {
    if (this.#state === 'closed') return;
    const up = this.#upstream;
    this.#upstream = null;
    if (!this.#exchange) return;
    if (this.#resp.phase === 'body' && this.#resp.tracker && !this.#resp.tracker.done && this.#resp.head && responseFraming(this.#resp.head, this.#exchange.method).kind === 'until_close') {
      this.#resp.finish?.();
      this.#exchange = null;
      this.#finishClient();
      return;
    }
    if (!this.#respStarted) {
      this.#exchange = null;
      this.#replyJson(502, 'Bad Gateway', { error: 'bad gateway', reason: 'upstream closed the connection before responding' }, true);
    } else {
      this.client.resetAndDestroy();
      this.#abort();
    }
    up?.destroy();
  }

  /** Response inspection queued in this turn, run once the relayed bytes have left (see #afterFlush). */
  #pendingInspection: Array<() => void> | null = null;

  /**
   * Runs response inspection (taint detectors) after this turn's relayed bytes
   * have been handed to the kernel, so detectors add no latency to the
   * response. Still in the same event-loop turn: taint is set before the next
   * decision on any connection can run.
   */
  #afterFlush(f: () => void): void {
    if (this.#pendingInspection) this.#pendingInspection.push(f);
    else f();
  }

  #onUpstream(): void {
    // One syscall for head + body pieces relayed in this turn.
    const c = this.client;
    c.cork();
    const later: Array<() => void> = (this.#pendingInspection = []);
    try {
      this.#relayUpstream();
    } catch (err) {
      this.#internalError(err);
    } finally {
      if (c.writableCorked) c.uncork();
      this.#pendingInspection = null;
    }
    try {
      for (const f of later) f();
    } catch (err) {
      this.#internalError(err);
    }
  }

  #relayUpstream(): void {
    while (this.#upBuf.length && this.#state !== 'closed') {
      const ex = this.#exchange;
      if (!ex) {
        // Bytes nobody asked for: an upstream out of sync. Drop the upstream.
        this.#upstream?.destroy();
        this.#upstream = null;
        this.#upBuf = EMPTY;
        return;
      }
      if (this.#resp.phase === 'head') {
        const r = parseResponseHead(this.#upBuf, this.limits.maxHeaderBytes);
        if (r.kind === 'need_more') return;
        if (r.kind === 'error') {
          this.#upstream?.destroy();
          this.#upstream = null;
          this.#exchange = null;
          if (!this.#respStarted) this.#replyJson(502, 'Bad Gateway', { error: 'bad gateway', reason: `upstream response: ${r.reason}` }, true);
          else this.#abort();
          return;
        }
        this.#upBuf = this.#upBuf.subarray(r.consumed);
        const head = r.head;
        if (head.status === 100 && ex.answered100) continue;
        this.#respStarted = true;
        this.client.write(head.raw);
        if (head.status >= 100 && head.status < 200 && head.status !== 101) continue;
        if (head.status === 101 || (ex.method === 'CONNECT' && head.status >= 200 && head.status < 300)) return this.#switchToTunnel();
        const framing = responseFraming(head, ex.method);
        if (framing.kind === 'error') {
          this.client.resetAndDestroy();
          return this.#abort();
        }
        this.#resp.head = head;
        this.#resp.phase = 'body';
        if (ex.mcp) this.#inspectMcpResponse(ex, head);
        else if (ex.http) this.#inspectTextResponse(ex.http, head);
        const inspect = this.#resp.inspect;
        this.#resp.tracker = new BodyTracker(framing, inspect ? (d) => this.#afterFlush(() => inspect(d)) : undefined);
        if (this.#resp.tracker.done) this.#responseDone();
        continue;
      }
      const tracker = this.#resp.tracker!;
      let n: number;
      try {
        n = tracker.take(this.#upBuf);
      } catch {
        this.client.resetAndDestroy();
        return this.#abort();
      }
      const part = this.#upBuf.subarray(0, n);
      this.#upBuf = this.#upBuf.subarray(n);
      if (part.length && !this.client.write(part)) {
        const up = this.#upstream!;
        up.pause();
        this.client.once('drain', () => up.resume());
      }
      if (tracker.done) this.#responseDone();
    }
  }

  #responseDone(): void {
    const ex = this.#exchange!;
    const finish = this.#resp.finish;
    if (finish) this.#afterFlush(finish);
    const respKeepAlive = this.#resp.head ? keepAlive(this.#resp.head) : true;
    this.#exchange = null;
    this.#resp = { phase: 'head', tracker: null, inspect: null, finish: null, head: null };
    if (!ex.keepAlive || !respKeepAlive || this.#state === 'req_body' || this.#clientEnded) {
      if (this.#state === 'req_body') this.#abort();
      else this.#finishClient();
      return;
    }
    this.#state = 'head';
    this.client.resume();
    // Nothing pipelined: the next request arrives as a 'data' event.
    if (!this.#buf.length) return;
    // Let the current call stack unwind before handling the next pipelined request.
    setImmediate(() => {
      try {
        this.#pump();
      } catch (err) {
        this.#internalError(err);
      }
    });
  }

  #switchToTunnel(): void {
    const up = this.#upstream!;
    this.#state = 'closed';
    if (this.#upBuf.length) this.client.write(this.#upBuf);
    if (this.#buf.length) up.write(this.#buf);
    this.#upBuf = this.#buf = EMPTY;
    up.removeAllListeners('data');
    this.client.removeAllListeners('data');
    this.client.pipe(up);
    up.pipe(this.client);
    this.client.resume();
  }

  // ---- MCP ----------------------------------------------------------------

  #mcpSessionOf(head: HttpHead): string | undefined {
    const h = header(head, 'mcp-session-id');
    if (h !== undefined) return h;
    // The older HTTP+SSE transport names the session in the POST URL.
    const q = /[?&]sessionId=([^&#]+)/.exec(head.target);
    return q ? decodeURIComponent(q[1]) : undefined;
  }

  #startMcp(head: HttpHead, ex: Exchange, framing: ReturnType<typeof requestFraming>): void {
    if (framing.kind === 'error') return;
    const session = this.#mcpSessionOf(head);
    if (head.method !== 'POST') {
      // GET opens a server→client event stream; DELETE ends the session.
      const result = this.#decideMcp({ kind: 'session', method: `http:${head.method}` }, session);
      if (!result.allowed) {
        this.#replyJson(403, 'Forbidden', { error: 'forbidden', policy: result.policies[0] ?? null, policies: result.policies, reason: denialText(result) }, framing.kind !== 'none' || !ex.keepAlive);
        return;
      }
      if (head.method === 'DELETE' && session !== undefined && result.agent) this.deps.decider.taint.closeMcp(result.agent.spiffeId, session);
      ex.mcp = { decision: result, session, dataIds: 'all' };
      this.#forwardHead(ex);
      if (framing.kind === 'none') this.#state = 'wait_resp';
      else {
        this.#reqBody = new BodyTracker(framing);
        this.#state = 'req_body';
      }
      return;
    }
    if (framing.kind === 'length' && framing.length > this.limits.maxBodyBytes) {
      this.#refuseMalformed(`MCP request body of ${framing.length} bytes exceeds ${this.limits.maxBodyBytes}`);
      this.#replyJson(413, 'Payload Too Large', { error: 'payload too large', reason: `body exceeds ${this.limits.maxBodyBytes} bytes` }, true);
      return;
    }
    this.#exchange = null;
    // The body must arrive before the decision, so the proxy answers the client's 100-continue itself.
    if (framing.kind !== 'none' && headerTokens(head, 'expect').includes('100-continue')) {
      this.client.write('HTTP/1.1 100 Continue\r\n\r\n');
      ex.answered100 = true;
    }
    const held = { raw: [head.raw] as Buffer[], decoded: [] as Buffer[], size: 0 };
    this.#held = held;
    this.#pendingMcp = ex;
    if (framing.kind === 'none') return this.#decideMcpBody();
    this.#reqBody = new BodyTracker(framing, (d) => held.decoded.push(d));
    this.#state = 'req_body';
  }

  #pendingMcp: Exchange | null = null;

  #decideMcp(call: ReturnType<typeof classifyMessage>, session: string | undefined): DecisionResult {
    const fallbackAction = call.kind === 'tool' ? 'call_tool' : call.kind === 'resource' ? 'resources/read' : call.kind === 'prompt' ? 'prompts/get' : 'mcp_session';
    return this.deps.decider.decide({
      origin: this.origin,
      protocol: 'mcp',
      mcpSession: session,
      fallback: { action: fallbackAction, resource: this.#endpointUid() },
      build: (snap, agent): RequestSpec => {
        const resource = this.#mcpServer(snap);
        // Each context is built whole (a spread of a shared base object is a slow path in V8).
        const context = (fields: Record<string, CedarValue>): RequestSpec['context'] => {
          if (session !== undefined) fields.mcp_session = session;
          return fields;
        };
        const upstream = (c: Parameters<NonNullable<RequestSpec['taintOnAllow']>>[0]) => c.upstreamBits(resource);
        switch (call.kind) {
          case 'invalid':
            return { action: fallbackAction, resource, context: context({}), refuse: `malformed MCP message: ${call.reason}` };
          case 'tool': {
            const shapes = toolShapesFor(snap);
            const declared = this.deps.decider.isDeclaredAction(snap, call.tool, shapes?.toolActions ?? null, agent);
            const args = shapes ? projectArguments(call.arguments, shapes.argumentTypes) : {};
            return {
              action: declared ? call.tool : 'call_tool',
              resource,
              context: context({ tool: call.tool, arguments: args }),
              taintOnAllow: (c) => c.toolBits(call.tool, call.arguments) | upstream(c),
            };
          }
          case 'resource':
            return { action: 'resources/read', resource, context: context({ method: 'resources/read', uri: call.uri }), taintOnAllow: upstream };
          case 'prompt':
            return { action: 'prompts/get', resource, context: context({ method: 'prompts/get', prompt: call.prompt }), taintOnAllow: upstream };
          case 'session':
            return { action: 'mcp_session', resource, context: context({ method: call.method }) };
        }
      },
    });
  }

  #decideMcpBody(): void {
    const held = this.#held!;
    const ex = this.#pendingMcp!;
    this.#held = null;
    this.#pendingMcp = null;
    const session = this.#mcpSessionOf(ex.head);
    const body = held.decoded.length === 1 ? held.decoded[0] : Buffer.concat(held.decoded);
    const parsed = parseJsonRpc(body.toString('utf8'));
    if (!parsed.ok) {
      this.#decideMcp({ kind: 'invalid', reason: parsed.reason }, session);
      this.#replyJson(400, 'Bad Request', jsonRpcError(null, PARSE_ERROR_CODE, `Parse error: ${parsed.reason}`), !ex.keepAlive);
      return;
    }
    const results = parsed.messages.map((m) => ({ m, r: this.#decideMcp(classifyMessage(m), session) }));
    const denied = results.filter((x) => !x.r.allowed);
    if (denied.length) {
      const answer = (m: JsonRpcMessage, r: DecisionResult | null) =>
        jsonRpcError(m.id ?? null, POLICY_DENIED_CODE, r ? `Denied by Lilith policy: ${denialText(r)}` : 'Denied by Lilith policy: another message in this batch was denied', {
          action: r ? `Action::${JSON.stringify(r.action)}` : undefined,
          resource: r ? uidText(r.resource) : undefined,
          policies: r?.policies ?? [],
          reason: r ? denialText(r) : 'batch refused',
        });
      const withIds = results.filter((x) => x.m.id !== undefined && x.m.method !== undefined);
      // The older HTTP+SSE transport answers on its event stream, not on the POST: a JSON-RPC
      // error in a 200 would never reach the caller. Refuse the POST itself (403, error in the body).
      const legacySse = header(ex.head, 'mcp-session-id') === undefined && /[?&]sessionId=/.test(ex.head.target);
      if (withIds.length === 0 || legacySse) {
        // Only notifications/responses: nothing to answer in JSON-RPC; say it in HTTP.
        this.#replyJson(403, 'Forbidden', answer(denied[0].m, denied[0].r), !ex.keepAlive);
        return;
      }
      const errors = withIds.map((x) => answer(x.m, x.r.allowed ? null : x.r));
      this.#replyJson(200, 'OK', parsed.batch ? errors : errors[0], !ex.keepAlive);
      return;
    }
    const dataIds = new Set<string | number>();
    for (const { m } of results) if (m.method && DATA_METHODS.has(m.method) && m.id !== undefined && m.id !== null) dataIds.add(m.id);
    ex.mcp = { decision: results[0].r, session, dataIds };
    this.#exchange = ex;
    this.#resp = { phase: 'head', tracker: null, inspect: null, finish: null, head: null };
    this.#respStarted = false;
    const up = this.#ensureUpstream();
    up.cork();
    for (const part of held.raw) up.write(part);
    up.uncork();
    this.#state = 'wait_resp';
  }

  /**
   * Plain HTTP: text-like, uncompressed response bodies run the content
   * detectors as they stream past (first max_body_bytes; chunks overlap by 1 KiB
   * so a match split across reads is still seen).
   */
  #inspectTextResponse(decision: DecisionResult, head: HttpHead): void {
    if (!decision.snapshot || !decision.agent) return;
    const ct = (header(head, 'content-type') ?? '').toLowerCase();
    if (!/^(text\/|application\/(json|xml|x-www-form-urlencoded|javascript|x-pem-file|x-ndjson)|[^;]*\+json|[^;]*\+xml)/.test(ct)) return;
    if (headerTokens(head, 'content-encoding').some((e) => e !== 'identity')) return;
    let seen = 0;
    let tail = '';
    this.#resp.inspect = (d) => {
      if (seen >= this.limits.maxBodyBytes) return;
      const part = d.subarray(0, this.limits.maxBodyBytes - seen);
      seen += part.length;
      const text = tail + part.toString('latin1');
      this.deps.decider.taintFromResponse(decision, text);
      tail = text.slice(-1024);
    };
  }

  /** Sets up taint inspection of an MCP response body (JSON or event stream). */
  #inspectMcpResponse(ex: Exchange, head: HttpHead): void {
    const mcp = ex.mcp!;
    const sid = header(head, 'mcp-session-id');
    if (sid !== undefined && mcp.decision.agent) this.deps.decider.taint.openMcp(mcp.decision.agent.spiffeId, sid);
    const session = mcp.session ?? sid;
    const encoding = headerTokens(head, 'content-encoding').filter((e) => e !== 'identity');
    if (encoding.length) return; // compressed bodies pass uninspected (documented limit)
    const onMessage = (text: string) => {
      const parsed = parseJsonRpc(text);
      if (!parsed.ok) return;
      for (const m of parsed.messages) {
        if (m.result === undefined) continue;
        if (mcp.dataIds !== 'all' && (m.id === undefined || m.id === null || !mcp.dataIds.has(m.id))) continue;
        this.deps.decider.taintFromResponse(mcp.decision, JSON.stringify(m.result), session);
      }
    };
    const ct = header(head, 'content-type')?.toLowerCase() ?? '';
    if (ct.startsWith('text/event-stream')) {
      const sse = new SseParser((e) => e.event === 'message' && onMessage(e.data), this.limits.maxBodyBytes);
      this.#resp.inspect = (d) => sse.push(d);
    } else if (ct.startsWith('application/json')) {
      const parts: Buffer[] = [];
      let size = 0;
      this.#resp.inspect = (d) => {
        size += d.length;
        // No copy: a socket read's buffer is never reused, so the slice stays intact.
        if (size <= this.limits.maxBodyBytes) parts.push(d);
      };
      this.#resp.finish = () => size <= this.limits.maxBodyBytes && onMessage(Buffer.concat(parts).toString('utf8'));
    }
  }
}

