// HTTP/2 requests as the enforcer decides and re-emits them: which header fields
// of a stream go upstream (pseudo-headers re-made from the decided values,
// connection-specific fields dropped), the session limits against protocol abuse,
// and gRPC's service and method from the request path.
import type http2 from 'node:http2';
import type { HttpHead } from './http1.js';

/** Fields never forwarded: connection-specific (RFC 9113 §8.2.2) or meant for the proxy. */
const DROPPED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'proxy-authorization',
  'host',
]);

/** Settings and options bounding what one agent's HTTP/2 session may cost. */
export function h2Limits(maxHeaderBytes: number): http2.ServerOptions {
  return {
    // Header list size is enforced by nghttp2 as the block is received (CONTINUATION floods
    // end there too: a header block larger than this is refused before it is held).
    maxHeaderListPairs: 256,
    maxSessionMemory: 32,
    maxSettings: 32,
    maxOutstandingPings: 10,
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
    settings: {
      maxConcurrentStreams: 100,
      maxHeaderListSize: maxHeaderBytes,
      enablePush: false,
      enableConnectProtocol: false,
    },
    // The proxy answers no HTTP/1 on an h2 ALPN.
    allowHTTP1: false,
  } as http2.ServerOptions;
}

/** Client-side settings toward the upstream. */
export function h2UpstreamSettings(maxHeaderBytes: number): http2.Settings {
  return { enablePush: false, maxHeaderListSize: maxHeaderBytes * 4 };
}

export interface GrpcMethod {
  service: string;
  method: string;
}

const GRPC_PATH = /^\/([A-Za-z_][A-Za-z0-9_.]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;

/** gRPC's `/package.Service/Method`, or null when the path is not one. */
export function grpcMethod(path: string): GrpcMethod | null {
  const m = GRPC_PATH.exec(path);
  return m ? { service: m[1], method: m[2] } : null;
}

export function isGrpc(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const ct = contentType.toLowerCase();
  return ct === 'application/grpc' || ct.startsWith('application/grpc+') || ct.startsWith('application/grpc;');
}

/** The client's regular fields, in order, minus the dropped ones; `te` only as "trailers". */
export function forwardedFields(headers: http2.IncomingHttpHeaders): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || DROPPED.has(name) || value === undefined) continue;
    if (name === 'te') {
      if (String(value).trim().toLowerCase() === 'trailers') out.push(['te', 'trailers']);
      continue;
    }
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, String(value)]);
  }
  return out;
}

/** An HTTP/1 head standing for an HTTP/2 request or response, for the deciders and inspectors that read heads. */
export function headOf(method: string, target: string, status: number, fields: Array<[string, string]>): HttpHead {
  const byName = new Map<string, string[]>();
  for (const [n, v] of fields) {
    const list = byName.get(n);
    if (list) list.push(v);
    else byName.set(n, [v]);
  }
  return { method, target, status, version: '1.1', headers: fields, byName, raw: Buffer.alloc(0) };
}
