// One client connection speaking HTTP/1.1 (plain HTTP or MCP over HTTP): the
// relay. Requests are handled one at a time in order, which makes pipelining
// safe: a pipelined request waits in the buffer until the previous response has
// been relayed. Heads are parsed; bodies stream through unchanged (MCP JSON-RPC
// POST bodies are held up to the body limit so each message can be decided first).
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
import { connectUpstream } from './relay.js';
import { denialText, type Agent, type Decider, type DecisionResult, type RequestSpec } from '../decide.js';
import { HeldBody, isRefusal, McpGate } from './mcp-exchange.js';
import { inspectMcpResponse, inspectTextResponse, type McpReplyScope, type ResponseInspector } from './sse-inspect.js';

export interface Limits {
  maxHeaderBytes: number;
  maxBodyBytes: number;
  idleTimeoutMs: number;
}

export interface HttpDeps {
  decider: Decider;
  names: LearnedNames;
}

const EMPTY: Buffer = Buffer.alloc(0);

interface Exchange {
  method: string;
  head: HttpHead;
  keepAlive: boolean;
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
  /** MCP POST body being held until it can be decided, and the exchange it belongs to. */
  #held: HeldBody | null = null;
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
        if (this.#held) {
          this.#held.raw.push(part);
          if (tracker.seen > this.limits.maxBodyBytes) {
            this.#refuseMalformed(`MCP request body exceeds ${this.limits.maxBodyBytes} bytes`);
            this.#replyJson(
              413,
              'Payload Too Large',
              { error: 'payload too large', reason: `body exceeds ${this.limits.maxBodyBytes} bytes` },
              true,
            );
            return;
          }
        } else if (part.length && !this.#upstream!.write(part)) {
          this.client.pause();
          this.#upstream!.once('drain', () => this.client.resume());
        }
        if (tracker.done) {
          this.#reqBody = null;
          if (this.#held) this.#decideHeldBody();
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
      protocol: this.#mcp.toMcpUpstream ? 'mcp' : 'http',
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
    if (this.#mcp.recognises(head)) return this.#startMcp(head, ex, framing);
    const result = this.#decideHttp(head);
    // A refused request's body is never read: close instead of draining it.
    if (!result.allowed) return this.#replyForbidden(result, framing.kind !== 'none' || !ex.keepAlive);
    ex.http = result;
    this.#forwardHead(ex);
    this.#streamBody(framing);
  }

  /** After a forwarded head: relay the request body (if any) as it arrives, then wait for the response. */
  #streamBody(framing: Framing): void {
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
        const context: RequestSpec['context'] = {
          method: head.method,
          path,
          port: this.origin!.destination.port,
          tls: false,
          host_mismatch: mismatch,
        };
        const ct = header(head, 'content-type');
        if (ct !== undefined) context.content_type = ct;
        const cl = header(head, 'content-length');
        if (cl !== undefined && /^\d{1,15}$/.test(cl)) context.content_length = Number(cl);
        const ua = header(head, 'user-agent');
        if (ua !== undefined) context.user_agent = ua;
        const resource = { type: 'Host', id: host };
        return {
          action: head.method,
          resource,
          context,
          findings: mismatch ? ['host_mismatch'] : undefined,
          taintOnAllow: (c) => c.upstreamBits(resource),
        };
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
    this.#resp = { phase: 'head', tracker: null, inspector: null, head: null };
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
          if (!this.#respStarted)
            this.#replyJson(502, 'Bad Gateway', { error: 'bad gateway', reason: `upstream response: ${r.reason}` }, true);
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

  // ---- MCP: held bodies (deciding is McpGate's job) ------------------------

  #startMcp(head: HttpHead, ex: Exchange, framing: Framing): void {
    if (head.method !== 'POST') {
      const scope = this.#mcp.decideStream(head);
      if (!scope.decision.allowed) return this.#replyForbidden(scope.decision, framing.kind !== 'none' || !ex.keepAlive);
      ex.mcp = scope;
      this.#forwardHead(ex);
      this.#streamBody(framing);
      return;
    }
    if (framing.kind === 'length' && framing.length > this.limits.maxBodyBytes) {
      this.#refuseMalformed(`MCP request body of ${framing.length} bytes exceeds ${this.limits.maxBodyBytes}`);
      this.#replyJson(
        413,
        'Payload Too Large',
        { error: 'payload too large', reason: `body exceeds ${this.limits.maxBodyBytes} bytes` },
        true,
      );
      return;
    }
    this.#exchange = null;
    // The body must arrive before the decision, so the proxy answers the client's 100-continue itself.
    if (framing.kind !== 'none' && headerTokens(head, 'expect').includes('100-continue')) {
      this.client.write('HTTP/1.1 100 Continue\r\n\r\n');
      ex.answered100 = true;
    }
    const held = new HeldBody(head.raw);
    this.#held = held;
    this.#pendingMcp = ex;
    if (framing.kind === 'none') return this.#decideHeldBody();
    this.#reqBody = new BodyTracker(framing, held.collect);
    this.#state = 'req_body';
  }

  /** The held body is complete: forward it whole if every message is permitted, else answer in the upstream's place. */
  #decideHeldBody(): void {
    const held = this.#held!;
    const ex = this.#pendingMcp!;
    this.#held = null;
    this.#pendingMcp = null;
    const verdict = this.#mcp.decideBody(ex.head, held);
    if (isRefusal(verdict)) return this.#replyJson(verdict.status, verdict.statusText, verdict.body, !ex.keepAlive);
    ex.mcp = verdict;
    this.#exchange = ex;
    this.#resp = { phase: 'head', tracker: null, inspector: null, head: null };
    this.#respStarted = false;
    const up = this.#ensureUpstream();
    up.cork();
    for (const part of held.raw) up.write(part);
    up.uncork();
    this.#state = 'wait_resp';
  }
}
