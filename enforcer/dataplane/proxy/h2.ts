// HTTP/2 inside intercepted TLS: the agent's session is served by Node's http2
// server side, the upstream reached by its client side over the verified TLS
// connection, and every stream is decided on its own before anything of it goes
// upstream: Action::"<METHOD>" on the :authority host (context as for HTTP/1
// plus http_version "2"), or Action::"grpc" with the service and method from
// the path. What goes upstream is re-made from the decided values (pseudo-headers,
// canonical path) plus the client's regular fields minus connection-specific ones.
// A denied stream is reset (RST_STREAM CANCEL), a denied gRPC call answered with
// grpc-status 7 (PERMISSION_DENIED); the session and its other streams go on.
// JSON bodies are held and, when JSON-RPC, decided as MCP exactly as over HTTP/1.
import http2 from 'node:http2';
import type net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin } from '../origin.js';
import { canonicalTarget, charsetOf, isJsonType, NO_BODY_METHODS } from '../protocols/http-canonical.js';
import { forwardedFields, grpcMethod, h2Limits, h2UpstreamSettings, headOf, isGrpc } from '../protocols/h2.js';
import { canonicalJson, parseJsonExact, type ExactJson } from '../protocols/json-exact.js';
import { looksLikeJsonRpc } from '../protocols/mcp.js';
import type { Decider, DecisionResult, RequestSpec } from '../decide.js';
import type { HttpHead } from '../protocols/http1.js';
import { denialText } from '../decide.js';
import type { HttpDeps, Limits } from './http.js';
import { isRefusal, McpGate } from './mcp-exchange.js';
import { inspectMcpResponse, inspectTextResponse, type McpReplyScope, type ResponseInspector } from './sse-inspect.js';

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Rapid reset (CVE-2023-44487): more client resets than this within the window ends the session. */
export const RAPID_RESET = { resets: 100, windowMs: 10_000 };

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
}

type Fields = Array<[string, string]>;

export function relayH2(agent: net.Socket, up: net.Socket, deps: H2Deps): void {
  const { origin, decider, limits } = deps;
  const scheme = deps.scheme ?? 'https';
  const endpoint: EntityUid = { type: 'Endpoint', id: formatDestination(origin.destination) };
  const mcp = new McpGate(origin, decider, deps.config, () => endpoint);
  const server = http2.createServer(h2Limits(limits.maxHeaderBytes));
  const upstream = http2.connect(`${scheme}://${deps.authorityName}`, {
    createConnection: () => up,
    settings: h2UpstreamSettings(limits.maxHeaderBytes),
    maxSessionMemory: 32,
  });
  let session: http2.ServerHttp2Session | null = null;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    session?.destroy();
    upstream.destroy();
    agent.destroy();
    up.destroy();
  };
  // TLS emits an error after its handshake (the upstream's TLS 1.3 alert refusing our client
  // certificate, a bad record) without closing the socket, and the sessions did not always see
  // it: the agent's connection then hung until the idle timeout. Either transport failing ends both.
  up.on('error', close);
  agent.on('error', close);
  upstream.on('error', close);
  upstream.on('close', close);
  upstream.on('goaway', () => session?.close());
  server.on('session', (s) => {
    session = s;
    s.on('error', close);
    s.on('close', close);
    s.setTimeout(limits.idleTimeoutMs, close);
  });
  server.on('sessionError', close);

  const resets: number[] = [];
  const refuseMalformed = (reason: string, protocol: 'http' | 'mcp' = mcp.toMcpUpstream ? 'mcp' : 'http') =>
    decider.decide({
      origin,
      protocol,
      fallback: { action: 'http', resource: endpoint },
      build: () => ({ action: 'http', resource: endpoint, context: {}, refuse: `malformed request: ${reason}` }),
    });

  server.on('stream', (stream, headers, flags) => {
    stream.on('error', () => undefined);
    stream.on('aborted', () => {
      const now = Date.now();
      resets.push(now);
      while (resets.length && resets[0] < now - RAPID_RESET.windowMs) resets.shift();
      if (resets.length > RAPID_RESET.resets) {
        refuseMalformed(`more than ${RAPID_RESET.resets} streams reset by the client within ${RAPID_RESET.windowMs} ms (rapid reset)`);
        session?.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
        close();
      }
    });
    try {
      onStream(stream, headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0);
    } catch (err) {
      process.stderr.write(`lilith dataplane: internal error on an HTTP/2 stream (reset): ${(err as Error)?.stack ?? String(err)}\n`);
      stream.close(NGHTTP2_PROTOCOL_ERROR);
    }
  });

  function onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ended: boolean): void {
    const method = String(headers[':method'] ?? '');
    const rawPath = headers[':path'];
    const authority = (headers[':authority'] ?? headers.host) as string | undefined;
    const refuse = (reason: string) => {
      refuseMalformed(reason);
      stream.close(NGHTTP2_PROTOCOL_ERROR);
    };
    // The advertised SETTINGS_MAX_HEADER_LIST_SIZE is not enforced on receipt by every
    // nghttp2 build: counted here too (RFC 9113 §6.5.2 size: name + value + 32 per field).
    let size = 0;
    for (const n in headers) {
      const v = headers[n];
      if (Array.isArray(v)) for (const one of v) size += n.length + 32 + one.length;
      else size += n.length + 32 + (typeof v === 'string' ? v.length : String(v ?? '').length);
    }
    if (size > limits.maxHeaderBytes) return refuse(`header list of ${size} bytes exceeds ${limits.maxHeaderBytes}`);
    // Extended CONNECT (websocket/tunnels over h2) is never offered (enableConnectProtocol false); plain CONNECT is a tunnel.
    if (method === 'CONNECT') return refuse('CONNECT is not relayed (no tunnels through HTTP/2)');
    if (headers[':protocol'] !== undefined) return refuse('extended CONNECT (:protocol) is not relayed');
    if (typeof rawPath !== 'string' || !authority) return refuse('missing :path or :authority');
    if (headers[':authority'] !== undefined && headers.host !== undefined && headers.host !== headers[':authority'])
      return refuse(':authority and Host disagree');
    const target = canonicalTarget(method, rawPath);
    if (!target.ok) return refuse(target.reason);
    if (!ended && NO_BODY_METHODS.has(method)) return refuse(`a ${method} request carries a body (${method} defines none)`);
    const { host, port } = splitAuthority(authority);
    const fields = forwardedFields(headers);
    // The HTTP/1-shaped head is read by the MCP deciders only: made when one asks.
    let head: HttpHead | null = null;
    const headNow = (): HttpHead => (head ??= headOf(method, target.path, 0, fields));
    const ct = headers['content-type'];
    const grpc = isGrpc(ct);
    const mismatch = deps.hostMismatch ? deps.hostMismatch(host) : host !== deps.authorityName;
    const decidedAuthority = (host.includes(':') ? `[${host}]` : host) + (port ? `:${port}` : '');

    const decideHttp = (): DecisionResult =>
      decider.decide({
        origin,
        protocol: 'http',
        fallback: { action: grpc ? 'grpc' : method, resource: endpoint },
        build: (): RequestSpec => {
          const resource = { type: 'Host', id: host };
          const context: RequestSpec['context'] = {
            path: target.path,
            port: origin.destination.port,
            tls: scheme === 'https',
            host_mismatch: mismatch,
          };
          const ua = headers['user-agent'];
          if (typeof ua === 'string') context.user_agent = ua;
          if (!host || !/^[a-z0-9._~!$&'()*+,;=:%-]+$/.test(host))
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
          if (typeof ct === 'string') context.content_type = ct;
          const cl = headers['content-length'];
          if (typeof cl === 'string' && /^\d{1,15}$/.test(cl)) context.content_length = Number(cl);
          return { action: method, resource, context, findings, taintOnAllow: (c) => c.upstreamBits(resource) };
        },
      });

    const deny = (result: DecisionResult) => {
      if (grpc) {
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc',
            'grpc-status': '7',
            'grpc-message': encodeURIComponent(denialText(result)),
          },
          { endStream: true },
        );
      } else stream.close(NGHTTP2_CANCEL);
    };

    const held = !grpc && !ended && (mcp.toMcpUpstream || isJsonType(typeof ct === 'string' ? ct : undefined));
    if (!held) {
      if (mcp.toMcpUpstream && method !== 'POST') {
        // GET event stream / DELETE session of an MCP upstream: decided as MCP session traffic.
        const scope = mcp.decideStream(headNow());
        if (!scope.decision.allowed) return deny(scope.decision);
        return forward(stream, method, decidedAuthority, target.path, fields, ended, null, { mcp: scope }, grpc);
      }
      const result = decideHttp();
      if (!result.allowed) return deny(result);
      return forward(stream, method, decidedAuthority, target.path, fields, ended, null, { http: result }, grpc);
    }
    const charset = charsetOf(typeof ct === 'string' ? ct : undefined);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return refuse(`JSON body declared charset '${charset}'`);
    if (mcp.toMcpUpstream && !isJsonType(typeof ct === 'string' ? ct : undefined)) return refuse('an MCP POST must carry application/json');
    const parts: Buffer[] = [];
    let bytes = 0;
    const key = deps.http.agentKey;
    const release = () => {
      if (bytes > 0) deps.http.budgets.unhold(key, bytes);
      bytes = -1;
    };
    stream.on('close', release);
    stream.on('data', (d: Buffer) => {
      if (bytes < 0) return;
      if (bytes + d.length > limits.maxBodyBytes || !deps.http.budgets.hold(key, d.length)) {
        release();
        refuseMalformed(`held request body exceeds ${limits.maxBodyBytes} bytes or the agent's held-bytes budget`);
        stream.respond({ ':status': 413, 'content-type': 'application/json' }, { endStream: false });
        stream.end(JSON.stringify({ error: 'payload too large' }));
        return;
      }
      parts.push(d);
      bytes += d.length;
    });
    stream.on('end', () => {
      if (bytes < 0) return;
      const raw = Buffer.concat(parts);
      release();
      // The same strict, exact reading as over HTTP/1 (protocols/json-exact.ts): what is
      // forwarded is the parsed bytes when they are the one reading, else the canonical form.
      let parsed: ExactJson | null = null;
      let parseError: string | null = null;
      try {
        parsed = parseJsonExact(STRICT_UTF8.decode(raw));
      } catch (err) {
        parseError = (err as Error).message;
      }
      if (mcp.toMcpUpstream || (parsed !== null && looksLikeJsonRpc(parsed.value))) {
        const verdict = mcp.decideBody(headNow(), parsed, raw, parseError);
        if (isRefusal(verdict)) {
          stream.respond({ ':status': verdict.status, 'content-type': 'application/json' });
          stream.end(canonicalJson(verdict.body));
          return;
        }
        return forward(stream, method, decidedAuthority, target.path, withLength(fields, verdict.body.length), false, verdict.body, {
          mcp: verdict.scope,
        });
      }
      const result = decideHttp();
      if (!result.allowed) return deny(result);
      forward(stream, method, decidedAuthority, target.path, withLength(fields, raw.length), false, raw, { http: result });
    });
  }

  /** Sends the decided request upstream and relays the response (headers, data, trailers) back on `stream`. */
  function forward(
    stream: http2.ServerHttp2Stream,
    method: string,
    authority: string,
    path: string,
    fields: Fields,
    ended: boolean,
    body: Buffer | null,
    scope: { http?: DecisionResult; mcp?: McpReplyScope },
    grpc = false,
  ): void {
    if (closed || upstream.destroyed) return void stream.close(NGHTTP2_CANCEL);
    const out: http2.OutgoingHttpHeaders = { ':method': method, ':scheme': scheme, ':authority': authority, ':path': path };
    for (const [n, v] of fields) {
      const prev = out[n];
      if (prev === undefined) out[n] = v;
      else out[n] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    const takesTrailers = grpc || out.te === 'trailers';
    const req = upstream.request(out, { endStream: ended && body === null });
    req.on('error', () => stream.close(NGHTTP2_CANCEL));
    stream.on('close', () => {
      if (!req.closed) req.close(NGHTTP2_CANCEL);
    });
    if (body) req.end(body);
    else if (!ended) {
      // A direct relay, lighter per stream than pipe() (most bodies are one DATA frame), with backpressure.
      stream.on('data', (d: Buffer) => {
        if (!req.write(d)) {
          stream.pause();
          req.once('drain', () => stream.resume());
        }
      });
      stream.on('end', () => req.end());
    }
    let trailers: http2.IncomingHttpHeaders | null = null;
    let inspector: ResponseInspector | null = null;
    req.on('response', (rh, flags) => {
      const fieldsBack = forwardedFields(rh);
      const status = Number(rh[':status']);
      const respHead = headOf(method, path, status, fieldsBack);
      inspector = scope.mcp
        ? inspectMcpResponse(scope.mcp, respHead, decider, limits.maxBodyBytes)
        : scope.http && !grpc
          ? inspectTextResponse(scope.http, respHead, decider, limits.maxBodyBytes)
          : null;
      const headersOut: http2.OutgoingHttpHeaders = { ':status': status };
      for (const [n, v] of fieldsBack) {
        const prev = headersOut[n];
        if (prev === undefined) headersOut[n] = v;
        else headersOut[n] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
      }
      if (stream.destroyed) return;
      const endNow = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      // Trailers are relayed to a client that said it takes them (te: trailers, as gRPC does; RFC 9110
      // §10.1.4) and on gRPC; to others the stream ends with its last data, without an empty trailer block.
      stream.respond(headersOut, { endStream: endNow, waitForTrailers: !endNow && takesTrailers });
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    if (takesTrailers)
      stream.on('wantTrailers', () => {
        const t: http2.OutgoingHttpHeaders = {};
        if (trailers) for (const [n, v] of forwardedFields(trailers)) t[n] = v;
        stream.sendTrailers(t);
      });
    req.on('data', (d: Buffer) => {
      if (stream.destroyed) return;
      if (!stream.write(d)) {
        req.pause();
        stream.once('drain', () => req.resume());
      }
      inspector?.inspect(d);
    });
    req.on('end', () => {
      inspector?.finish?.();
      if (!stream.destroyed && !stream.writableEnded) stream.end();
    });
  }

  // The session reads the TLS stream itself and first takes what is buffered (the
  // preface often arrives with the handshake): the socket is never set flowing here.
  server.emit('connection', agent);
}

function withLength(fields: Fields, length: number): Fields {
  return [...fields.filter(([n]) => n !== 'content-length'), ['content-length', String(length)]];
}

function splitAuthority(authority: string): { host: string; port: string } {
  let host = authority;
  let port = '';
  const v6 = /^\[([^\]]+)\](?::(\d*))?$/.exec(authority);
  if (v6) {
    host = v6[1];
    port = v6[2] ?? '';
  } else {
    const m = /^(.*?)(?::(\d*))?$/.exec(authority)!;
    host = m[1];
    port = m[2] ?? '';
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  return { host, port };
}
