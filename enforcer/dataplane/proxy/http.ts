// One client connection speaking HTTP/1.1 (plain HTTP or MCP over HTTP): the
// relay. Requests are handled one at a time in order, which makes pipelining
// safe: a pipelined request waits in the buffer until the previous response has
// been relayed. What goes upstream is the canonical form of what was decided
// (protocols/http-canonical.ts): the head re-emitted, chunked bodies re-encoded,
// JSON bodies held up to the body limit, decided (as MCP when they are JSON-RPC)
// and forwarded as the proxy serialises them. Upgrades are their own decision.
// What MCP requests mean and how they are decided is mcp-exchange.ts; what is read
// out of relayed responses is sse-inspect.ts.
import net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin } from '../origin.js';
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
  type Framing,
  type HttpHead,
} from '../protocols/http1.js';
import { connectUpstream, relay } from './relay.js';
import { denialText, HostUids, type Agent, type Decider, type DecisionResult, type RequestSpec } from '../decide.js';
import { isRefusal, McpGate } from './mcp-exchange.js';
import { looksLikeJsonRpc } from '../protocols/mcp.js';
import {
  canonicalHead,
  canonicalTarget,
  charsetOf,
  chunk,
  decidedAuthority,
  isDecidableHost,
  isJsonType,
  LAST_CHUNK,
  NO_BODY_METHODS,
  splitAuthority,
} from '../protocols/http-canonical.js';
import { canonicalJson, parseJsonExact, type ExactJson } from '../protocols/json-exact.js';
import type { AgentBudgets } from '../budgets.js';
import { inspectMcpResponse, inspectTextResponse, type McpReplyScope, type ResponseInspector } from './sse-inspect.js';

export interface Limits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  idleTimeoutMs: number;
}

export interface HttpDeps {
  decider: Decider;
  names: LearnedNames;
  budgets: AgentBudgets;
  /** Whose budgets this connection draws on. */
  agentKey: string;
}

export interface HttpOptions {
  /** Total lifetime of an upgraded tunnel. */
  tunnelMaxMs: number;
  /** Intercepted TLS: opens a verified TLS connection to the upstream (default: plain TCP to the destination). */
  connectUpstream?: () => net.Socket;
  /** Intercepted TLS: the name the agent's TLS was decided on; a Host naming anything else is a host mismatch. */
  tlsName?: string;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const EMPTY: Buffer = Buffer.alloc(0);

interface Exchange {
  method: string;
  head: HttpHead;
  keepAlive: boolean;
  /** The decided path (origin form, normalised) and authority the canonical head carries. */
  path: string;
  authority: string;
  /** The Upgrade token the client asked for, if any. */
  upgrade?: string;
  /** Set once the upgrade itself was permitted: re-decides it when the agent's taint changes. */
  upgradeDecision?: () => boolean;
  /** Set for MCP exchanges: what the response inspector needs. */
  mcp: McpReplyScope | null;
  /** Set for permitted plain HTTP exchanges: text responses run the content detectors. */
  http?: DecisionResult;
  /** The proxy already answered `Expect: 100-continue` itself: the upstream's 100 is not relayed again. */
  answered100?: boolean;
}

interface ResponseState {
  phase: 'head' | 'body';
  tracker: BodyTracker | null;
  inspector: ResponseInspector | null;
  head: HttpHead | null;
}

export class HttpConnection {
  #buf: Buffer = EMPTY;
  #state: 'head' | 'req_body' | 'wait_resp' | 'closed' = 'head';
  #upstream: net.Socket | null = null;
  #upBuf: Buffer = EMPTY;
  #exchange: Exchange | null = null;
  #reqBody: BodyTracker | null = null;
  /** Whether the request body in flight is re-encoded as chunks. */
  #reChunk = false;
  /** A JSON body held until it can be decided (decoded bytes), whether it goes to an MCP upstream, and its exchange. */
  #held: { parts: Buffer[]; bytes: number; mcp: boolean } | null = null;
  #pendingMcp: Exchange | null = null;
  #resp: ResponseState = { phase: 'head', tracker: null, inspector: null, head: null };
  #respStarted = false;
  #clientEnded = false;
  #headTimer: NodeJS.Timeout | null = null;
  readonly #mcp: McpGate;

  constructor(
    private readonly client: net.Socket,
    private readonly origin: Origin | null,
    private readonly deps: HttpDeps,
    private readonly limits: Limits,
    config: LilithConfig | null,
    private readonly options: HttpOptions = { tunnelMaxMs: 3_600_000 },
  ) {
    this.#mcp = new McpGate(origin, deps.decider, config, () => this.#endpointUid());
  }

  start(initial: Buffer): void {
    const c = this.client;
    c.setTimeout(this.limits.idleTimeoutMs);
    c.on('timeout', () => this.#abort());
    c.on('error', () => this.#abort());
    c.on('close', () => this.#abort());
    c.on('end', () => {
      this.#clientEnded = true;
      if (this.#state === 'head' && !this.#exchange) this.#finishClient();
      else if (this.#state === 'req_body')
        this.#abort(); // body cut short: nothing sane to forward
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
        if (up?.writableCorked) up.uncork();
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
    this.#releaseHeld();
    this.#state = 'closed';
    if (this.#headTimer) clearTimeout(this.#headTimer);
    // Also after a polite close (#finishClient): its end() may never finish when the agent
    // reset the connection, and the idle timeout must still release it.
    if (!this.client.destroyed) this.client.destroy();
    if (this.#upstream && !this.#upstream.destroyed) this.#upstream.destroy();
  }

  /** Ends the client connection politely after pending writes. */
  #finishClient(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    if (this.#headTimer) clearTimeout(this.#headTimer);
    this.#flushClient();
    this.client.end();
    this.client.destroySoon();
    if (this.#upstream && !this.#upstream.destroyed) this.#upstream.end();
  }

  /** A response the proxy writes itself; the connection stays usable unless `close`. */
  #reply(buf: Buffer, close: boolean): void {
    this.#flushClient();
    this.client.write(buf);
    if (close || this.#clientEnded) this.#finishClient();
    else this.#state = 'head';
  }

  #replyJson(status: number, text: string, body: unknown, close: boolean): void {
    // canonicalJson: a JSON-RPC id beyond 2^53 is echoed exactly (JSON.stringify cannot write a BigInt).
    this.#reply(simpleResponse(status, text, canonicalJson(body), 'application/json', close), close);
  }

  #replyForbidden(result: DecisionResult, close: boolean): void {
    this.#replyJson(
      403,
      'Forbidden',
      { error: 'forbidden', policy: result.policies[0] ?? null, policies: result.policies, reason: denialText(result) },
      close,
    );
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
          const text =
            r.status === 431 ? 'Request Header Fields Too Large' : r.status === 505 ? 'HTTP Version Not Supported' : 'Bad Request';
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
        const held = this.#held;
        if (held) {
          if (held.bytes > this.limits.maxBodyBytes) {
            this.#refuseMalformed(`held request body exceeds ${this.limits.maxBodyBytes} bytes`);
            this.#replyJson(
              413,
              'Payload Too Large',
              { error: 'payload too large', reason: `body exceeds ${this.limits.maxBodyBytes} bytes` },
              true,
            );
            return;
          }
          if (held.bytes < 0) {
            this.#refuseMalformed('the agent holds too many request body bytes awaiting decisions');
            this.#replyJson(503, 'Service Unavailable', { error: 'busy', reason: 'held body budget exhausted' }, true);
            return;
          }
        } else if (!this.#reChunk && part.length && !this.#upstream!.write(part)) {
          this.client.pause();
          this.#upstream!.once('drain', () => this.client.resume());
        } else if (this.#reChunk && this.#upstream!.writableNeedDrain) {
          this.client.pause();
          this.#upstream!.once('drain', () => this.client.resume());
        }
        if (tracker.done) {
          this.#reqBody = null;
          if (held) this.#decideHeldBody();
          else {
            if (this.#reChunk) this.#upstream!.write(LAST_CHUNK);
            this.#state = 'wait_resp';
          }
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
    this.deps.decider.refuse(
      this.origin,
      this.#mcp.toMcpUpstream ? 'mcp' : 'http',
      'http',
      this.#endpointUid(),
      `malformed request: ${reason}`,
    );
  }

  #endpoint: EntityUid | null = null;
  readonly #hosts = new HostUids();
  #endpointUid(): EntityUid {
    if (this.#endpoint) return this.#endpoint;
    const d = this.origin?.destination;
    this.#endpoint = { type: 'Endpoint', id: d ? formatDestination(d) : 'unknown' };
    return this.#endpoint;
  }

  /** Refuses a request that cannot be decided as sent; the connection is closed (its body, if any, is never read). */
  #refuseRequest(status: number, text: string, reason: string): void {
    this.#refuseMalformed(reason);
    this.#replyJson(status, text, { error: text.toLowerCase(), reason }, true);
  }

  #startRequest(head: HttpHead): void {
    const framing = requestFraming(head);
    const hosts = headerValues(head, 'host');
    if (framing.kind === 'error' || hosts.length > 1 || (hosts.length === 0 && head.version === '1.1')) {
      const reason = framing.kind === 'error' ? framing.reason : hosts.length > 1 ? 'more than one Host header' : 'missing Host header';
      return this.#refuseRequest(400, 'Bad Request', reason);
    }
    if (head.method === 'CONNECT') return this.#refuseRequest(405, 'Method Not Allowed', 'CONNECT is not relayed (not a forward proxy)');
    if (framing.kind !== 'none' && NO_BODY_METHODS.has(head.method))
      return this.#refuseRequest(400, 'Bad Request', `a ${head.method} request carries a body (${head.method} defines none)`);
    const target = canonicalTarget(head.method, head.target);
    if (!target.ok) return this.#refuseRequest(400, 'Bad Request', target.reason);
    const authority = target.authority ?? hosts[0] ?? '';
    if (target.authority !== undefined && hosts.length && hosts[0].toLowerCase() !== target.authority.toLowerCase())
      return this.#refuseRequest(400, 'Bad Request', 'absolute-form target names another authority than Host');
    const expect = headerTokens(head, 'expect');
    if (expect.some((e) => e !== '100-continue')) return this.#refuseRequest(417, 'Expectation Failed', 'unsupported Expect');
    const connection = headerTokens(head, 'connection');
    const upgrades = headerValues(head, 'upgrade');
    if (upgrades.length > 1 || (connection.includes('upgrade') && upgrades.length === 0))
      return this.#refuseRequest(400, 'Bad Request', 'ambiguous Upgrade request');
    const ex: Exchange = {
      method: head.method,
      head,
      keepAlive: keepAlive(head),
      mcp: null,
      path: target.path,
      authority,
      upgrade: upgrades[0]?.trim() || undefined,
    };
    if (this.#mcp.toMcpUpstream) return this.#startMcp(head, ex, framing);
    // A JSON body may be JSON-RPC to an MCP server the capsule does not name: held and looked
    // at, so MCP is recognised by its body, not by how Accept or other headers are spelled.
    // (MCP servers refuse bodies not typed as JSON.)
    if (framing.kind !== 'none' && isJsonType(header(head, 'content-type'))) return this.#startHeld(head, ex, framing, false);
    const result = this.#decideHttp(ex);
    // A refused request's body is never read: close instead of draining it.
    if (!result.allowed) return this.#replyForbidden(result, framing.kind !== 'none' || !ex.keepAlive);
    if (ex.upgrade && !this.#decideUpgrade(ex, result)) return;
    ex.http = result;
    this.#forwardHead(ex, framing);
    this.#streamBody(framing);
  }

  /** An Upgrade is its own action ("upgrade", context.upgrade = the token): false when refused (the reply is written). */
  #decideUpgrade(ex: Exchange, method: DecisionResult): boolean {
    const decide = () =>
      this.deps.decider.decide({
        origin: this.origin,
        protocol: 'http',
        fallback: { action: 'upgrade', resource: method.resource },
        build: (_snap, agent): RequestSpec => {
          const spec = this.#httpSpec(ex, agent);
          spec.action = 'upgrade';
          spec.context.upgrade = ex.upgrade!.toLowerCase();
          return spec;
        },
      });
    const result = decide();
    if (!result.allowed) {
      this.#replyForbidden(result, true);
      return false;
    }
    const spiffeId = result.agent!.spiffeId;
    let mask = this.deps.decider.taint.mask(spiffeId);
    ex.upgradeDecision = () => {
      const now = this.deps.decider.taint.mask(spiffeId);
      if (now === mask) return true;
      mask = now;
      return decide().allowed;
    };
    return true;
  }

  /** After a forwarded head: relay the request body (if any) as it arrives, then wait for the response. */
  #streamBody(framing: Framing): void {
    if (framing.kind === 'none') this.#state = 'wait_resp';
    else {
      this.#reChunk = framing.kind === 'chunked';
      const up = this.#upstream!;
      // Chunked bodies are re-encoded from the decoded data: the upstream sees the proxy's framing only.
      this.#reqBody = new BodyTracker(
        framing,
        this.#reChunk
          ? (d) => {
              for (const b of chunk(d)) up.write(b);
            }
          : undefined,
      );
      this.#state = 'req_body';
    }
  }

  /** Host header (or absolute-form target) → lowercase hostname and whether it disagrees with the real destination. */
  #hostOf(hostport: string, agent: Agent): { host: string; mismatch: boolean; port: string } {
    const { host, port } = splitAuthority(hostport);
    const dest = this.origin!.destination.address;
    let mismatch: boolean;
    if (this.options.tlsName !== undefined) mismatch = host !== this.options.tlsName;
    else if (net.isIP(host)) mismatch = normalizeIp(host) !== normalizeIp(dest);
    else if (host === 'localhost') mismatch = !isLoopback(dest);
    else mismatch = !this.deps.names.namesFor(agent.spiffeId, dest).includes(host);
    return { host, mismatch, port };
  }

  #decideHttp(ex: Exchange): DecisionResult {
    return this.deps.decider.decide({
      origin: this.origin,
      protocol: 'http',
      fallback: { action: ex.method, resource: this.#endpointUid() },
      build: (_snap, agent) => this.#httpSpec(ex, agent),
    });
  }

  /** The request as policy sees it; also fixes the authority the canonical head carries. */
  #httpSpec(ex: Exchange, agent: Agent): RequestSpec {
    const head = ex.head;
    const { host, mismatch, port } = this.#hostOf(ex.authority, agent);
    if (!isDecidableHost(host))
      return { action: head.method, resource: this.#endpointUid(), context: {}, refuse: 'malformed request: empty or invalid Host' };
    ex.authority = decidedAuthority(host, port);
    const context: RequestSpec['context'] = {
      method: head.method,
      path: ex.path,
      port: this.origin!.destination.port,
      tls: this.options.tlsName !== undefined,
      host_mismatch: mismatch,
    };
    const ct = header(head, 'content-type');
    if (ct !== undefined) context.content_type = ct;
    const cl = header(head, 'content-length');
    if (cl !== undefined && /^\d{1,15}$/.test(cl)) context.content_length = Number(cl);
    const ua = header(head, 'user-agent');
    if (ua !== undefined) context.user_agent = ua;
    const resource = this.#hosts.of(host);
    return {
      action: head.method,
      resource,
      context,
      findings: mismatch ? ['host_mismatch'] : undefined,
      taintOnAllow: (c) => c.upstreamBits(resource),
    };
  }

  #ensureUpstream(): net.Socket {
    if (this.#upstream && !this.#upstream.destroyed && this.#upstream.writable) return this.#upstream;
    const up = this.options.connectUpstream?.() ?? connectUpstream(this.origin!.destination);
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

  /** Writes the canonical head of a decided request upstream (`framing`: the body the proxy will send; `body`: a held body, sent in the same write). */
  #forwardHead(
    ex: Exchange,
    framing: Framing,
    expect100 = !ex.answered100 && headerTokens(ex.head, 'expect').includes('100-continue'),
    body?: Buffer,
  ): void {
    this.#exchange = ex;
    this.#resp = { phase: 'head', tracker: null, inspector: null, head: null };
    this.#respStarted = false;
    this.#ensureUpstream().write(
      canonicalHead(
        ex.head,
        {
          method: ex.method,
          path: ex.path,
          authority: ex.authority || formatDestination(this.origin!.destination),
          version: ex.head.version,
          framing,
          keepAlive: ex.keepAlive,
          upgrade: ex.upgradeDecision ? ex.upgrade : undefined,
          expect100: framing.kind !== 'none' && expect100,
        },
        body,
      ),
    );
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
    const resp = this.#resp;
    if (
      resp.phase === 'body' &&
      resp.tracker &&
      !resp.tracker.done &&
      resp.head &&
      responseFraming(resp.head, this.#exchange.method).kind === 'until_close'
    ) {
      resp.inspector?.finish?.();
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
      this.#flushClient();
    } catch (err) {
      this.#internalError(err);
    } finally {
      this.#out = null;
      if (c.writableCorked) c.uncork();
      this.#pendingInspection = null;
    }
    try {
      for (const f of later) f();
    } catch (err) {
      this.#internalError(err);
    }
  }

  /** Relayed bytes not yet written to the client (see #toClient). */
  #out: Buffer | null = null;

  /**
   * Queues relayed bytes for the client. A response head and its body usually
   * arrive in one upstream read: adjacent pieces of it leave as one write (one
   * write syscall, not a writev of several buffers).
   */
  #toClient(b: Buffer): void {
    const o = this.#out;
    if (o && o.buffer === b.buffer && o.byteOffset + o.length === b.byteOffset)
      this.#out = Buffer.from(o.buffer, o.byteOffset, o.length + b.length);
    else {
      this.#flushClient();
      this.#out = b;
    }
  }

  /** Writes what #toClient queued; a full client buffer pauses the upstream until it drains. */
  #flushClient(): void {
    const o = this.#out;
    if (!o) return;
    this.#out = null;
    if (this.client.destroyed || this.client.writableEnded) return;
    if (!this.client.write(o) && this.#upstream) {
      const up = this.#upstream;
      up.pause();
      this.client.once('drain', () => up.resume());
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
          if (!this.#respStarted)
            this.#replyJson(502, 'Bad Gateway', { error: 'bad gateway', reason: `upstream response: ${r.reason}` }, true);
          else this.#abort();
          return;
        }
        this.#upBuf = this.#upBuf.subarray(r.consumed);
        const head = r.head;
        if (head.status === 100 && ex.answered100) continue;
        if (head.status === 101 && !ex.upgradeDecision) {
          this.client.resetAndDestroy();
          return this.#abort();
        }
        this.#respStarted = true;
        this.#toClient(head.raw);
        if (head.status >= 100 && head.status < 200 && head.status !== 101) continue;
        if (head.status === 101) {
          // Only a permitted upgrade becomes a tunnel; a 101 nobody asked for is an upstream out of protocol.
          if (!ex.upgradeDecision) {
            this.client.resetAndDestroy();
            return this.#abort();
          }
          return this.#switchToTunnel(ex.upgradeDecision);
        }
        const framing = responseFraming(head, ex.method);
        if (framing.kind === 'error') {
          this.client.resetAndDestroy();
          return this.#abort();
        }
        this.#resp.head = head;
        this.#resp.phase = 'body';
        const inspector = ex.mcp
          ? inspectMcpResponse(ex.mcp, head, this.deps.decider, this.limits.maxBodyBytes)
          : ex.http
            ? inspectTextResponse(ex.http, head, this.deps.decider, this.limits.maxBodyBytes)
            : null;
        this.#resp.inspector = inspector;
        this.#resp.tracker = new BodyTracker(framing, inspector ? (d) => this.#afterFlush(() => inspector.inspect(d)) : undefined);
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
      if (part.length) this.#toClient(part);
      if (tracker.done) this.#responseDone();
    }
  }

  #responseDone(): void {
    const ex = this.#exchange!;
    const inspector = this.#resp.inspector;
    if (inspector?.finish) this.#afterFlush(() => inspector.finish!());
    const respKeepAlive = this.#resp.head ? keepAlive(this.#resp.head) : true;
    this.#exchange = null;
    this.#resp = { phase: 'head', tracker: null, inspector: null, head: null };
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

  /** A permitted upgrade: an opaque stream, idle- and total-bounded, re-decided when the agent's taint changes. */
  #switchToTunnel(stillAllowed: () => boolean): void {
    const up = this.#upstream!;
    this.#state = 'closed';
    if (this.#headTimer) clearTimeout(this.#headTimer);
    this.#flushClient();
    if (this.#upBuf.length) this.client.write(this.#upBuf);
    const pending = this.#buf;
    this.#upBuf = this.#buf = EMPTY;
    up.removeAllListeners('data');
    this.client.removeAllListeners('data');
    this.client.removeAllListeners('timeout');
    this.client.removeAllListeners('end');
    if (pending.length && !stillAllowed()) {
      this.client.resetAndDestroy();
      up.destroy();
      return;
    }
    relay(
      this.client,
      this.origin!.destination,
      pending,
      { idleTimeoutMs: this.limits.idleTimeoutMs, maxMs: this.options.tunnelMaxMs, stillAllowed },
      up,
    );
  }

  // ---- MCP: held bodies (deciding is McpGate's job) ------------------------

  #startMcp(head: HttpHead, ex: Exchange, framing: Framing): void {
    // The streamable HTTP transport speaks POST (messages), GET (the event stream) and DELETE
    // (end of session); any other method is not MCP, so it is not decided as a session request.
    if (head.method !== 'POST' && head.method !== 'GET' && head.method !== 'DELETE')
      return this.#refuseRequest(405, 'Method Not Allowed', `${head.method} to an MCP upstream (MCP over HTTP is POST, GET and DELETE)`);
    if (head.method !== 'POST') {
      if (framing.kind !== 'none') return this.#refuseRequest(400, 'Bad Request', `MCP ${head.method} with a body`);
      if (ex.upgrade) return this.#refuseRequest(400, 'Bad Request', 'Upgrade on an MCP upstream');
      const scope = this.#mcp.decideStream(head);
      if (!scope.decision.allowed) return this.#replyForbidden(scope.decision, !ex.keepAlive);
      ex.mcp = scope;
      this.#forwardHead(ex, framing);
      this.#state = 'wait_resp';
      return;
    }
    const ct = header(head, 'content-type');
    if (!isJsonType(ct)) return this.#refuseRequest(415, 'Unsupported Media Type', 'an MCP POST must carry application/json');
    this.#startHeld(head, ex, framing, true);
  }

  /** Holds a JSON body until it is complete and decided; `mcp`: the destination is a declared MCP upstream. */
  #startHeld(head: HttpHead, ex: Exchange, framing: Framing, mcp: boolean): void {
    const charset = charsetOf(header(head, 'content-type'));
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
      return this.#refuseRequest(415, 'Unsupported Media Type', `JSON body declared charset '${charset}' (only UTF-8 is decided)`);
    if (ex.upgrade) return this.#refuseRequest(400, 'Bad Request', 'Upgrade on a request with a body');
    if (framing.kind === 'length' && framing.length > this.limits.maxBodyBytes)
      return this.#refuseRequest(
        413,
        'Payload Too Large',
        `held request body of ${framing.length} bytes exceeds ${this.limits.maxBodyBytes}`,
      );
    this.#exchange = null;
    // The body must arrive before the decision, so the proxy answers the client's 100-continue itself.
    if (framing.kind !== 'none' && headerTokens(head, 'expect').includes('100-continue')) {
      this.#flushClient();
      this.client.write('HTTP/1.1 100 Continue\r\n\r\n');
      ex.answered100 = true;
    }
    const held = { parts: [] as Buffer[], bytes: 0, mcp };
    this.#held = held;
    this.#pendingMcp = ex;
    if (framing.kind === 'none') return this.#decideHeldBody();
    const key = this.deps.agentKey;
    if (framing.kind === 'length' && this.#buf.length >= framing.length) {
      // The whole body came with its head (the usual small JSON-RPC POST): held and decided
      // now, under the same budget, without a body tracker and another pass of the pump.
      const body = this.#buf.subarray(0, framing.length);
      this.#buf = this.#buf.subarray(framing.length);
      if (!this.deps.budgets.hold(key, body.length)) {
        this.#held = null;
        this.#pendingMcp = null;
        this.#refuseMalformed('the agent holds too many request body bytes awaiting decisions');
        return this.#replyJson(503, 'Service Unavailable', { error: 'busy', reason: 'held body budget exhausted' }, true);
      }
      held.parts.push(body);
      held.bytes = body.length;
      return this.#decideHeldBody();
    }
    this.#reqBody = new BodyTracker(framing, (d) => {
      if (held.bytes < 0) return;
      if (!this.deps.budgets.hold(key, d.length)) {
        this.deps.budgets.unhold(key, held.bytes);
        held.bytes = -1; // over the agent's budget: refused by the body loop
        return;
      }
      held.parts.push(d);
      held.bytes += d.length;
    });
    this.#state = 'req_body';
  }

  #releaseHeld(): void {
    const held = this.#held;
    if (held && held.bytes > 0) this.deps.budgets.unhold(this.deps.agentKey, held.bytes);
    if (held) held.bytes = 0;
  }

  /** The held body is complete: decide it (as MCP when it is JSON-RPC) and forward its canonical form, else answer in the upstream's place. */
  #decideHeldBody(): void {
    const held = this.#held!;
    const ex = this.#pendingMcp!;
    this.#releaseHeld();
    this.#held = null;
    this.#pendingMcp = null;
    const raw = held.parts.length === 1 ? held.parts[0] : Buffer.concat(held.parts);
    let parsed: ExactJson | null = null;
    let parseError: string | null = null;
    try {
      parsed = parseJsonExact(STRICT_UTF8.decode(raw));
    } catch (err) {
      parseError = (err as Error).message;
    }
    if (held.mcp || (parsed !== null && looksLikeJsonRpc(parsed.value))) {
      const verdict = this.#mcp.decideBody(ex.head, parsed, raw, parseError);
      if (isRefusal(verdict)) return this.#replyJson(verdict.status, verdict.statusText, verdict.body, !ex.keepAlive);
      ex.mcp = verdict.scope;
      return this.#sendHeld(ex, verdict.body);
    }
    // Not JSON-RPC: a plain request, decided and forwarded with the bytes that were held.
    const result = this.#decideHttp(ex);
    if (!result.allowed) return this.#replyForbidden(result, !ex.keepAlive);
    ex.http = result;
    this.#sendHeld(ex, raw);
  }

  #sendHeld(ex: Exchange, body: Buffer): void {
    // Head and body in one buffer: one write, not a writev of two.
    this.#forwardHead(ex, body.length ? { kind: 'length', length: body.length } : { kind: 'none' }, false, body);
    this.#state = 'wait_resp';
  }
}
