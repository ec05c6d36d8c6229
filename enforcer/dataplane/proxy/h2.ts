// HTTP/2 inside intercepted TLS (or prior-knowledge h2c), relayed frame by frame:
// the agent's connection and the upstream's are each one H2Peer (h2-peer.ts), and
// every agent stream is decided on its own before anything of it goes upstream:
// Action::"<METHOD>" on the :authority host (context as for HTTP/1 plus
// http_version "2"), or Action::"grpc" with the service and method from the path.
// What goes upstream is re-encoded from the decided values (pseudo-headers,
// canonical path) plus the request's regular fields; a malformed request
// (RFC 9113 §8.2–8.3) is refused, never repaired. A denied stream is reset
// (RST_STREAM CANCEL), a denied gRPC call answered with grpc-status 7
// (PERMISSION_DENIED); the connection and its other streams go on. JSON bodies
// are held and, when JSON-RPC, decided as MCP exactly as over HTTP/1.
// Agent and upstream stream ids differ: an upstream stream is opened only when
// its request has been decided, in the order decisions are made.
import type net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin } from '../origin.js';
import {
  canonicalTarget,
  charsetOf,
  decidedAuthority,
  isDecidableHost,
  isJsonType,
  NO_BODY_METHODS,
  splitAuthority,
} from '../protocols/http-canonical.js';
import { ERR, H2Error } from '../protocols/h2-frames.js';
import { grpcMethod, headOf, isGrpc, readRequest, readResponse, readTrailers, type H2Request } from '../protocols/h2.js';
import type { HeaderField } from '../protocols/hpack.js';
import { canonicalJson, parseJsonExact, type ExactJson } from '../protocols/json-exact.js';
import { looksLikeJsonRpc } from '../protocols/mcp.js';
import type { Decider, DecisionResult, RequestSpec } from '../decide.js';
import type { HttpHead } from '../protocols/http1.js';
import { denialText, HostUids } from '../decide.js';
import type { HttpDeps, Limits } from './http.js';
import { H2Peer, type PeerStream } from './h2-peer.js';
import { isRefusal, McpGate } from './mcp-exchange.js';
import { inspectMcpResponse, inspectTextResponse, type McpReplyScope, type ResponseInspector } from './sse-inspect.js';

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const EMPTY = Buffer.alloc(0);

/** Rapid reset (CVE-2023-44487): more client resets than this within the window ends the session. */
export const RAPID_RESET = { resets: 100, windowMs: 10_000 };
/** Streams the agent may have open at once. */
export const MAX_CONCURRENT_STREAMS = 100;
/** Our receive window per connection (per stream it is the default 65,535). */
const CONNECTION_WINDOW = 1 << 20;
/** Each side's first SETTINGS (the agent's after its preface) within this, or within the idle timeout when shorter. */
export const SETTINGS_DEADLINE_MS = 10_000;

export interface H2Deps {
  origin: Origin;
  /** The name the TLS was decided on (SNI): :authority must name it. For h2c, the name the upstream session is opened for. */
  authorityName: string;
  /** "http": prior-knowledge h2c on cleartext (context.tls false, :scheme http upstream). Default "https". */
  scheme?: 'https' | 'http';
  /** Whether an :authority host disagrees with the destination (default: it is not authorityName). */
  hostMismatch?: (host: string) => boolean;
  decider: Decider;
  config: LilithConfig | null;
  limits: Limits;
  http: HttpDeps;
  /** Audits the upstream connection failing (default: a refusal on the destination endpoint). */
  upstreamFailed?: (reason: string) => void;
}

/** One agent stream and, once decided and opened, its upstream stream. */
interface Exchange {
  a: PeerStream;
  u: PeerStream | null;
  method: string;
  grpc: boolean;
  takesTrailers: boolean;
  /** Body bytes the request declared (-1: none) and those seen so far. */
  declared: number;
  seen: number;
  /** Holding the body for a decision at its end (JSON, MCP): its parts, or null when relaying. */
  held: Buffer[] | null;
  heldBytes: number;
  /** What decides and forwards a held body once it is whole. */
  decideHeld: ((raw: Buffer) => void) | null;
  /** Decided, waiting for an upstream stream slot: the header list and body to send. */
  pending: { fields: HeaderField[]; data: Buffer[]; end: boolean } | null;
  scope: { http?: DecisionResult; mcp?: McpReplyScope };
  path: string;
  /** The body going upstream was credited to the agent as it was held. */
  prepaid: boolean;
  /** The final response head has gone to the agent. */
  responded: boolean;
  respDeclared: number;
  respSeen: number;
  inspector: ResponseInspector | null;
}

export function relayH2(agent: net.Socket, up: net.Socket, deps: H2Deps): void {
  new H2Relay(agent, up, deps).start();
}

class H2Relay {
  readonly #deps: H2Deps;
  readonly #scheme: 'https' | 'http';
  readonly #endpoint: EntityUid;
  readonly #mcp: McpGate;
  readonly #agentSocket: net.Socket;
  readonly #upSocket: net.Socket;
  readonly #agent: H2Peer;
  readonly #up: H2Peer;
  readonly #waiting: Exchange[] = [];
  readonly #resets: number[] = [];
  #upstreamLast = Number.POSITIVE_INFINITY;
  #agentDone = false;
  #closed = false;

  constructor(agent: net.Socket, up: net.Socket, deps: H2Deps) {
    this.#deps = deps;
    this.#scheme = deps.scheme ?? 'https';
    this.#agentSocket = agent;
    this.#upSocket = up;
    this.#endpoint = { type: 'Endpoint', id: formatDestination(deps.origin.destination) };
    this.#mcp = new McpGate(deps.origin, deps.decider, deps.config, () => this.#endpoint);
    const maxHeaderBytes = deps.limits.maxHeaderBytes;
    const settingsTimeoutMs = Math.min(SETTINGS_DEADLINE_MS, deps.limits.idleTimeoutMs);
    this.#agent = new H2Peer(
      agent,
      {
        role: 'server',
        maxHeaderBytes,
        maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
        connectionWindow: CONNECTION_WINDOW,
        settingsTimeoutMs,
      },
      {
        headers: (s, fields, end) => this.#fromAgentHeaders(s, fields, end),
        data: (s, d, end) => this.#fromAgentData(s, d, end),
        reset: (s) => this.#agentReset(s),
        written: (s, n) => this.#up.credit((s.exchange as Exchange | null)?.u ?? null, n),
        goaway: () => {
          this.#agentDone = true;
          this.#closeWhenIdle();
        },
        // The last stream done after a GOAWAY either way: the connection closes (deferred: this runs inside the peer's send).
        slotFree: () => {
          if (this.#agentDone) queueMicrotask(() => this.#closeWhenIdle());
        },
        closed: (fault) => {
          if (fault) this.#refuseMalformed(fault.message);
          this.#close();
        },
      },
    );
    this.#up = new H2Peer(
      up,
      {
        role: 'client',
        maxHeaderBytes: maxHeaderBytes * 4,
        maxConcurrentStreams: 0,
        connectionWindow: CONNECTION_WINDOW,
        settingsTimeoutMs,
      },
      {
        headers: (s, fields, end) => this.#fromUpstreamHeaders(s, fields, end),
        data: (s, d, end) => this.#fromUpstreamData(s, d, end),
        reset: (s, code) => {
          const ex = s.exchange as Exchange;
          ex.u = null;
          // After a complete response, NO_ERROR only says the rest of the request is not wanted
          // (RFC 9113 §8.1): the response still goes to the agent, and the agent is told the same
          // once it has (its further DATA meanwhile is credited and dropped).
          if (code === ERR.NO_ERROR && (!ex.a.sendOpen || ex.a.queueEnd)) this.#agent.resetWhenSent(ex.a, ERR.NO_ERROR);
          else this.#agent.reset(ex.a, upstreamResetCode(code));
          this.#closeWhenIdle();
        },
        // Held bodies were credited as they were held.
        written: (s, n) => {
          const ex = s.exchange as Exchange;
          if (!ex.prepaid) this.#agent.credit(ex.a, n);
        },
        goaway: (last) => {
          this.#upstreamLast = last;
          this.#agent.goaway(ERR.NO_ERROR);
          this.#agentDone = true;
          this.#closeWhenIdle();
        },
        slotFree: () => this.#openWaiting(),
        closed: (fault) => {
          if (fault) this.#upstreamFailed(`upstream HTTP/2 connection failed: ${fault.message}`);
          this.#upstreamGone();
        },
      },
    );
  }

  start(): void {
    this.#agentSocket.on('error', () => this.#close());
    // The upstream's transport failing (TLS reports an upstream's alert refusing our client certificate
    // this way, the caller audits it) is the upstream gone: the agent's streams refused or reset, a GOAWAY.
    this.#upSocket.on('error', () => this.#up.close(null));
    this.#agentSocket.setNoDelay?.(true);
    this.#upSocket.setNoDelay?.(true);
    this.#agentSocket.setTimeout(this.#deps.limits.idleTimeoutMs, () => this.#close());
    this.#up.start();
    this.#agent.start();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ex of this.#waiting) this.#release(ex);
    this.#waiting.length = 0;
    // Each peer ends its own socket: destroyed, or after a GOAWAY ended (so the GOAWAY is read first).
    this.#agent.close(null);
    this.#up.close(null);
  }

  /**
   * The upstream connection ended: what it sent still goes to the agent (queued behind the agent's
   * window), streams it cut mid-response are reset as failed, those not yet opened are refused
   * (safe to retry); no new stream is taken, and the agent connection closes once its streams are done.
   */
  #upstreamGone(): void {
    if (this.#closed) return;
    for (const ex of this.#waiting) {
      this.#release(ex);
      this.#agent.reset(ex.a, ERR.REFUSED_STREAM);
    }
    this.#waiting.length = 0;
    for (const a of this.#agent.openStreams()) {
      const ex = a.exchange as Exchange | null;
      if (!ex?.u?.recvOpen) continue;
      ex.u = null;
      this.#agent.reset(a, ERR.INTERNAL_ERROR);
    }
    this.#agent.goaway(ERR.NO_ERROR);
    this.#agentDone = true;
    this.#closeWhenIdle();
  }

  #closeWhenIdle(): void {
    if (this.#agentDone && this.#agent.size === 0) this.#close();
  }

  /** Audits the upstream connection failing (the agent's streams are refused by #upstreamGone). */
  #upstreamFailed(reason: string): void {
    if (this.#deps.upstreamFailed) return this.#deps.upstreamFailed(reason);
    this.#deps.decider.refuse(this.#deps.origin, 'http', 'http', this.#endpoint, reason);
  }

  #refuseMalformed(reason: string): void {
    const protocol = this.#mcp.toMcpUpstream ? 'mcp' : 'http';
    this.#deps.decider.refuse(this.#deps.origin, protocol, 'http', this.#endpoint, `malformed request: ${reason}`);
  }

  #agentReset(s: PeerStream): void {
    const ex = s.exchange as Exchange | null;
    if (ex) {
      if (ex.u) this.#up.reset(ex.u, ERR.CANCEL);
      this.#release(ex);
    }
    const now = Date.now();
    const resets = this.#resets;
    resets.push(now);
    while (resets.length && resets[0] < now - RAPID_RESET.windowMs) resets.shift();
    if (resets.length > RAPID_RESET.resets)
      return this.#agent.close(
        new H2Error(
          ERR.ENHANCE_YOUR_CALM,
          0,
          `more than ${RAPID_RESET.resets} streams reset by the client within ${RAPID_RESET.windowMs} ms (rapid reset)`,
        ),
      );
    this.#closeWhenIdle();
  }

  /** Releases what a held body drew on the agent's budget. */
  #release(ex: Exchange): void {
    if (ex.held && ex.heldBytes > 0) this.#deps.http.budgets.unhold(this.#deps.http.agentKey, ex.heldBytes);
    ex.held = null;
    ex.heldBytes = 0;
    ex.pending = null;
  }

  /** Refuses a malformed request: audited, the stream reset (and its upstream half, if any). */
  #refuseStream(ex: Exchange | null, s: PeerStream, reason: string): void {
    this.#refuseMalformed(reason);
    if (ex) {
      if (ex.u) this.#up.reset(ex.u, ERR.CANCEL);
      this.#release(ex);
    }
    this.#agent.reset(s, ERR.PROTOCOL_ERROR);
    this.#closeWhenIdle();
  }

  // ── agent → upstream ────────────────────────────────────────────────────────

  #fromAgentHeaders(s: PeerStream, fields: HeaderField[], end: boolean): void {
    const ex = s.exchange as Exchange | null;
    if (s.blocks > 1) {
      // Trailers: only with END_STREAM (RFC 9113 §8.1).
      if (!ex || !end) return this.#refuseStream(ex, s, 'a second header block without END_STREAM');
      const t = readTrailers(fields);
      if (!t.ok) return this.#refuseStream(ex, s, t.reason);
      if (!this.#lengthHolds(ex, 0, true)) return this.#refuseStream(ex, s, 'content-length disagrees with the DATA sent');
      if (ex.held) return this.#heldEnd(ex);
      if (ex.pending) {
        ex.pending.end = true;
        return;
      }
      if (ex.u) {
        if (t.value.length) this.#up.sendTrailers(ex.u, t.value);
        else this.#up.sendData(ex.u, EMPTY, true);
      }
      return;
    }
    if (this.#agentDone) return this.#agent.reset(s, ERR.REFUSED_STREAM);
    try {
      this.#request(s, fields, end);
    } catch (err) {
      process.stderr.write(`lilith dataplane: internal error on an HTTP/2 stream (reset): ${(err as Error)?.stack ?? String(err)}\n`);
      this.#agent.reset(s, ERR.INTERNAL_ERROR);
    }
  }

  #request(s: PeerStream, fields: HeaderField[], ended: boolean): void {
    const { decider } = this.#deps;
    const read = readRequest(fields);
    if (!read.ok) return this.#refuseStream(null, s, read.reason);
    const req: H2Request = read.value;
    const method = req.method;
    if (req.scheme !== this.#scheme) return this.#refuseStream(null, s, `:scheme '${req.scheme}' on an ${this.#scheme} connection`);
    if (!req.path.startsWith('/') && req.path !== '*') return this.#refuseStream(null, s, ':path is not in origin form');
    const target = this.#target(method, req.path);
    if (!target.ok) return this.#refuseStream(null, s, target.reason);
    if (!ended && NO_BODY_METHODS.has(method))
      return this.#refuseStream(null, s, `a ${method} request carries a body (${method} defines none)`);
    if (ended && req.contentLength > 0) return this.#refuseStream(null, s, 'content-length disagrees with the DATA sent');
    const { host, port } = this.#authority(req.authority);
    const ct = req.contentType;
    const grpc = isGrpc(ct);
    const mismatch = this.#deps.hostMismatch ? this.#deps.hostMismatch(host) : host !== this.#deps.authorityName;
    const authority = decidedAuthority(host, port);
    const ex: Exchange = {
      a: s,
      u: null,
      method,
      grpc,
      takesTrailers: grpc || req.takesTrailers,
      declared: req.contentLength,
      seen: 0,
      held: null,
      heldBytes: 0,
      decideHeld: null,
      pending: null,
      prepaid: false,
      scope: {},
      path: target.path,
      responded: false,
      respDeclared: -1,
      respSeen: 0,
      inspector: null,
    };
    s.exchange = ex;
    // The HTTP/1-shaped head is read by the MCP deciders only: made when one asks.
    let head: HttpHead | null = null;
    const headNow = (): HttpHead => (head ??= headOf(method, target.path, 0, req.fields));
    const upstreamFields = (fieldsOut: HeaderField[]): HeaderField[] => [
      [':method', method],
      [':scheme', this.#scheme],
      [':authority', authority],
      [':path', target.path],
      ...fieldsOut,
    ];
    const endpoint = this.#endpoint;
    const origin = this.#deps.origin;
    const decideHttp = (): DecisionResult =>
      decider.decide({
        origin,
        protocol: 'http',
        fallback: { action: grpc ? 'grpc' : method, resource: endpoint },
        build: (): RequestSpec => {
          const resource = this.#hosts.of(host);
          const context: RequestSpec['context'] = {
            path: target.path,
            port: origin.destination.port,
            tls: this.#scheme === 'https',
            host_mismatch: mismatch,
          };
          if (req.userAgent !== undefined) context.user_agent = req.userAgent;
          if (!isDecidableHost(host))
            return { action: method, resource: endpoint, context: {}, refuse: 'malformed request: empty or invalid :authority' };
          const findings = mismatch ? ['host_mismatch'] : undefined;
          if (grpc) {
            const g = grpcMethod(target.path);
            if (!g || method !== 'POST')
              return { action: 'grpc', resource, context, refuse: `malformed gRPC request: ${method} ${target.path}` };
            context.service = g.service;
            context.method = g.method;
            return { action: 'grpc', resource, context, findings, taintOnAllow: (c) => c.upstreamBits(resource) };
          }
          context.method = method;
          context.http_version = '2';
          if (ct !== undefined) context.content_type = ct;
          if (req.contentLength >= 0) context.content_length = req.contentLength;
          return { action: method, resource, context, findings, taintOnAllow: (c) => c.upstreamBits(resource) };
        },
      });

    const held = !grpc && !ended && (this.#mcp.toMcpUpstream || isJsonType(ct));
    if (!held) {
      if (this.#mcp.toMcpUpstream && method !== 'POST') {
        // GET event stream / DELETE session of an MCP upstream: decided as MCP session traffic.
        const scope = this.#mcp.decideStream(headNow());
        if (!scope.decision.allowed) return this.#deny(ex, scope.decision);
        ex.scope = { mcp: scope };
      } else {
        const result = decideHttp();
        if (!result.allowed) return this.#deny(ex, result);
        ex.scope = { http: result };
      }
      return this.#openUpstream(ex, upstreamFields(req.fields), ended, null);
    }
    const charset = charsetOf(ct);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
      return this.#refuseStream(ex, s, `JSON body declared charset '${charset}'`);
    if (this.#mcp.toMcpUpstream && !isJsonType(ct)) return this.#refuseStream(ex, s, 'an MCP POST must carry application/json');
    ex.held = [];
    ex.decideHeld = (raw: Buffer) => {
      // The same strict, exact reading as over HTTP/1 (protocols/json-exact.ts): what is
      // forwarded is the parsed bytes when they are the one reading, else the canonical form.
      let parsed: ExactJson | null = null;
      let parseError: string | null = null;
      try {
        parsed = parseJsonExact(STRICT_UTF8.decode(raw));
      } catch (err) {
        parseError = (err as Error).message;
      }
      const withLength = (n: number): HeaderField[] =>
        upstreamFields([...req.fields.filter(([name]) => name !== 'content-length'), ['content-length', String(n)]]);
      if (this.#mcp.toMcpUpstream || (parsed !== null && looksLikeJsonRpc(parsed.value))) {
        const verdict = this.#mcp.decideBody(headNow(), parsed, raw, parseError);
        if (isRefusal(verdict)) return this.#answer(ex, verdict.status, Buffer.from(canonicalJson(verdict.body)));
        ex.scope = { mcp: verdict.scope };
        return this.#openUpstream(ex, withLength(verdict.body.length), false, verdict.body);
      }
      const result = decideHttp();
      if (!result.allowed) return this.#deny(ex, result);
      ex.scope = { http: result };
      this.#openUpstream(ex, withLength(raw.length), false, raw);
    };
  }

  readonly #hosts = new HostUids();
  #lastTarget: { method: string; path: string; target: ReturnType<typeof canonicalTarget> } | null = null;
  #lastAuthority: { authority: string; split: { host: string; port: string } } | null = null;

  /** canonicalTarget, kept for the connection's next request naming the same target (the usual case). */
  #target(method: string, path: string): ReturnType<typeof canonicalTarget> {
    const last = this.#lastTarget;
    if (last?.path === path && last.method === method) return last.target;
    const target = canonicalTarget(method, path);
    this.#lastTarget = { method, path, target };
    return target;
  }

  #authority(authority: string): { host: string; port: string } {
    const last = this.#lastAuthority;
    if (last?.authority === authority) return last.split;
    const split = splitAuthority(authority);
    this.#lastAuthority = { authority, split };
    return split;
  }

  #fromAgentData(s: PeerStream, d: Buffer, end: boolean): void {
    const ex = s.exchange as Exchange | null;
    if (!ex) return this.#agent.credit(s, d.length);
    if (!this.#lengthHolds(ex, d.length, end)) return this.#refuseStream(ex, s, 'content-length disagrees with the DATA sent');
    if (ex.held) {
      const { budgets, agentKey } = this.#deps.http;
      if (ex.heldBytes + d.length > this.#deps.limits.maxBodyBytes || !budgets.hold(agentKey, d.length)) {
        this.#refuseMalformed(`held request body exceeds ${this.#deps.limits.maxBodyBytes} bytes or the agent's held-bytes budget`);
        this.#release(ex);
        return this.#answer(ex, 413, Buffer.from(JSON.stringify({ error: 'payload too large' })));
      }
      if (d.length) ex.held.push(d);
      ex.heldBytes += d.length;
      // Held bytes are bounded by the body limit and the agent's budget, not by the window: credited now.
      this.#agent.credit(s, d.length);
      if (end) this.#heldEnd(ex);
      return;
    }
    if (ex.pending) {
      if (d.length) ex.pending.data.push(d);
      ex.pending.end ||= end;
      return;
    }
    if (!ex.u || !this.#up.sendData(ex.u, d, end)) this.#agent.credit(s, d.length);
  }

  #heldEnd(ex: Exchange): void {
    const raw = ex.held!.length === 1 ? ex.held![0] : Buffer.concat(ex.held!);
    this.#release(ex);
    ex.prepaid = true;
    ex.decideHeld?.(raw);
  }

  /** Whether the body so far fits the declared content-length (RFC 9113 §8.1.1). */
  #lengthHolds(ex: Exchange, n: number, end: boolean): boolean {
    ex.seen += n;
    if (ex.declared < 0) return true;
    return ex.seen <= ex.declared && (!end || ex.seen === ex.declared);
  }

  #deny(ex: Exchange, result: DecisionResult): void {
    if (!ex.grpc) {
      this.#agent.reset(ex.a, ERR.CANCEL);
      return this.#closeWhenIdle();
    }
    this.#agent.sendHeaders(
      ex.a,
      [
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ['grpc-status', '7'],
        ['grpc-message', encodeURIComponent(denialText(result))],
      ],
      true,
    );
    // Whatever the client still sends on it is not wanted (RFC 9113 §8.1: a complete response, then NO_ERROR).
    if (ex.a.recvOpen) this.#agent.reset(ex.a, ERR.NO_ERROR);
    this.#closeWhenIdle();
  }

  /** Our own answer on the stream (a refusal with a JSON body). */
  #answer(ex: Exchange, status: number, body: Buffer): void {
    this.#agent.sendHeaders(
      ex.a,
      [
        [':status', String(status)],
        ['content-type', 'application/json'],
        ['content-length', String(body.length)],
      ],
      false,
    );
    this.#agent.sendData(ex.a, body, true);
    // The agent still uploading is told to stop once the answer is out (RFC 9113 §8.1), not before.
    if (ex.a.recvOpen) this.#agent.resetWhenSent(ex.a, ERR.NO_ERROR);
    this.#closeWhenIdle();
  }

  #openUpstream(ex: Exchange, fields: HeaderField[], end: boolean, body: Buffer | null): void {
    if (this.#up.closed) {
      this.#agent.reset(ex.a, ERR.REFUSED_STREAM);
      return this.#closeWhenIdle();
    }
    ex.pending = { fields, data: body ? [body] : [], end: end || body !== null };
    if (this.#waiting.length === 0 && this.#tryOpen(ex)) return;
    this.#waiting.push(ex);
  }

  #tryOpen(ex: Exchange): boolean {
    const p = ex.pending!;
    const u = this.#up.open(p.fields, p.end && p.data.length === 0, ex);
    if (!u) return false;
    if (u.id > this.#upstreamLast) {
      this.#up.reset(u, ERR.CANCEL);
      this.#agent.reset(ex.a, ERR.REFUSED_STREAM);
      return true;
    }
    ex.u = u;
    ex.pending = null;
    for (let i = 0; i < p.data.length; i++) this.#up.sendData(u, p.data[i], p.end && i === p.data.length - 1);
    return true;
  }

  #openWaiting(): void {
    while (this.#waiting.length) {
      const ex = this.#waiting[0];
      if (!ex.pending) {
        this.#waiting.shift();
        continue;
      }
      if (!this.#tryOpen(ex)) return;
      this.#waiting.shift();
    }
  }

  // ── upstream → agent ────────────────────────────────────────────────────────

  #fromUpstreamHeaders(u: PeerStream, fields: HeaderField[], end: boolean): void {
    const ex = u.exchange as Exchange;
    const a = ex.a;
    if (ex.responded) {
      const t = readTrailers(fields);
      if (!t.ok || !end) return this.#upstreamFault(ex, `trailers: ${t.ok ? 'without END_STREAM' : t.reason}`);
      if (ex.respDeclared >= 0 && ex.respSeen !== ex.respDeclared) return this.#upstreamFault(ex, 'content-length disagrees');
      ex.inspector?.finish?.();
      // Trailers go to a client that takes them (te: trailers, as gRPC sends; RFC 9110 §10.1.4) and on gRPC;
      // to others the stream ends with its last data, without an empty trailer block.
      if (ex.takesTrailers) this.#agent.sendTrailers(a, t.value);
      else this.#agent.sendData(a, EMPTY, true);
      return;
    }
    const r = readResponse(fields);
    if (!r.ok) return this.#upstreamFault(ex, r.reason);
    const { status, fields: back, contentLength } = r.value;
    if (status < 200) {
      if (end || status === 101) return this.#upstreamFault(ex, `informational ${status} ending the stream`);
      this.#agent.sendHeaders(a, [[':status', String(status)], ...back], false);
      return;
    }
    ex.responded = true;
    ex.respDeclared = ex.method === 'HEAD' || status === 204 || status === 304 ? -1 : contentLength;
    const { decider, limits } = this.#deps;
    if (ex.scope.mcp || (ex.scope.http && !ex.grpc)) {
      const respHead = headOf(ex.method, ex.path, status, back);
      ex.inspector = ex.scope.mcp
        ? inspectMcpResponse(ex.scope.mcp, respHead, decider, limits.maxBodyBytes)
        : inspectTextResponse(ex.scope.http!, respHead, decider, limits.maxBodyBytes);
    }
    if (end && ex.respDeclared > 0) return this.#upstreamFault(ex, 'content-length disagrees');
    this.#agent.sendHeaders(a, [[':status', String(status)], ...back], end);
    if (end) ex.inspector?.finish?.();
  }

  #fromUpstreamData(u: PeerStream, d: Buffer, end: boolean): void {
    const ex = u.exchange as Exchange;
    if (!ex.responded) return this.#upstreamFault(ex, 'DATA before the response head');
    ex.respSeen += d.length;
    if (ex.respDeclared >= 0 && (ex.respSeen > ex.respDeclared || (end && ex.respSeen !== ex.respDeclared)))
      return this.#upstreamFault(ex, 'content-length disagrees');
    if (!this.#agent.sendData(ex.a, d, end)) this.#up.credit(u, d.length);
    if (d.length) ex.inspector?.inspect(d);
    if (end) ex.inspector?.finish?.();
  }

  /** The upstream broke HTTP/2's message rules on a stream: both halves reset, nothing more relayed. */
  #upstreamFault(ex: Exchange, reason: string): void {
    process.stderr.write(`lilith dataplane: malformed HTTP/2 response from the upstream (stream reset): ${reason}\n`);
    if (ex.u) this.#up.reset(ex.u, ERR.PROTOCOL_ERROR);
    ex.u = null;
    this.#agent.reset(ex.a, ERR.INTERNAL_ERROR);
    this.#closeWhenIdle();
  }
}

/**
 * The code an upstream's stream reset reaches the agent with: the upstream's own when RFC 9113 §7
 * defines it, so a failure reads as one (relayed as CANCEL, node:http2 and others report a cut
 * response as no error at all); a reset without an error before the response ended is a failure.
 */
function upstreamResetCode(code: number): number {
  if (code === ERR.NO_ERROR || code > ERR.HTTP_1_1_REQUIRED) return ERR.INTERNAL_ERROR;
  return code;
}
