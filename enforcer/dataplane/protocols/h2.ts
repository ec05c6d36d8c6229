// HTTP/2 requests and responses as the enforcer reads and re-emits them: a
// decoded header list checked against RFC 9113 §8.2–8.3 (a malformed one is
// refused, never repaired and forwarded), the regular fields that go on
// (pseudo-headers are re-made from the decided values), and gRPC's service and
// method from the request path.
import type { HttpHead } from './http1.js';
import type { HeaderField } from './hpack.js';

/** Connection-specific fields (RFC 9113 §8.2.2): their presence makes a message malformed. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Fields meant for the proxy or for HTTP/1's upgrade: accepted, not forwarded. */
const NOT_FORWARDED = new Set(['host', 'proxy-authorization', 'http2-settings']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);

/** tchar of RFC 9110 §5.6.2, lower case only (RFC 9113 §8.2.1). */
const NAME_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_CHAR[c.charCodeAt(0)] = 1;

/** Why a field is malformed per RFC 9113 §8.2.1, or null. */
function fieldFault(name: string, value: string): string | null {
  if (name.length === 0) return 'an empty field name';
  for (let i = name.charCodeAt(0) === 0x3a ? 1 : 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || NAME_CHAR[c] === 0)
      return `field name '${printable(name)}' has a character not allowed (upper case, space, colon or control)`;
  }
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return `field '${printable(name)}' has NUL, CR or LF in its value`;
  }
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(value.length - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09)
    return `field '${printable(name)}' has leading or trailing whitespace`;
  return null;
}

const printable = (s: string) => s.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);

export interface H2Request {
  method: string;
  scheme: string;
  /** :authority, else Host. */
  authority: string;
  path: string;
  /** Regular fields to forward, in order (te only as "trailers"; Host and proxy fields dropped). */
  fields: HeaderField[];
  contentType: string | undefined;
  /** The declared content-length, or -1. */
  contentLength: number;
  userAgent: string | undefined;
  takesTrailers: boolean;
}

export type Read<T> = { ok: true; value: T } | { ok: false; reason: string };

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** A request header list read and checked; any fault refuses the stream. */
export function readRequest(list: ReadonlyArray<HeaderField>): Read<H2Request> {
  let method: string | undefined;
  let scheme: string | undefined;
  let authority: string | undefined;
  let path: string | undefined;
  let host: string | undefined;
  let contentType: string | undefined;
  let contentLength = -1;
  let userAgent: string | undefined;
  let takesTrailers = false;
  let regular = false;
  const fields: HeaderField[] = [];
  for (const f of list) {
    const [name, value] = f;
    const fault = fieldFault(name, value);
    if (fault) return fail(fault);
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return fail(`pseudo-header ${name} after a regular field`);
      if (!REQUEST_PSEUDO.has(name)) return fail(`pseudo-header ${printable(name)} is not a request pseudo-header`);
      if (name === ':protocol') return fail('extended CONNECT (:protocol) is not relayed');
      const seen = name === ':method' ? method : name === ':scheme' ? scheme : name === ':authority' ? authority : path;
      if (seen !== undefined) return fail(`pseudo-header ${name} repeated`);
      if (name === ':method') method = value;
      else if (name === ':scheme') scheme = value;
      else if (name === ':authority') authority = value;
      else path = value;
      continue;
    }
    regular = true;
    if (CONNECTION_SPECIFIC.has(name)) return fail(`connection-specific field '${name}' in an HTTP/2 request`);
    if (name === 'te') {
      if (value.toLowerCase() !== 'trailers') return fail(`te '${printable(value)}' (only "trailers" is allowed in HTTP/2)`);
      takesTrailers = true;
      fields.push(['te', 'trailers']);
      continue;
    }
    if (name === 'host') {
      if (host !== undefined) return fail('Host repeated');
      host = value;
    }
    if (NOT_FORWARDED.has(name)) continue;
    if (name === 'content-length') {
      if (contentLength >= 0 || !/^\d{1,15}$/.test(value)) return fail(`content-length '${printable(value)}' is not one decimal length`);
      contentLength = Number(value);
    } else if (name === 'content-type') contentType ??= value;
    else if (name === 'user-agent') userAgent ??= value;
    fields.push(f);
  }
  if (method === undefined || method === '') return fail('missing :method');
  if (method === 'CONNECT') return fail('CONNECT is not relayed (no tunnels through HTTP/2)');
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) return fail(`:method '${printable(method)}' is not a token`);
  if (scheme === undefined || path === undefined || path === '') return fail('missing :scheme or :path');
  if (authority === undefined && host === undefined) return fail('missing :authority');
  if (authority !== undefined && host !== undefined && authority !== host) return fail(':authority and Host disagree');
  return {
    ok: true,
    value: {
      method,
      scheme,
      authority: (authority ?? host) as string,
      path,
      fields,
      contentType,
      contentLength,
      userAgent,
      takesTrailers,
    },
  };
}

export interface H2Response {
  status: number;
  fields: HeaderField[];
  contentLength: number;
}

/** An upstream's response (or informational) header list; connection-specific fields are dropped, other faults refuse it. */
export function readResponse(list: ReadonlyArray<HeaderField>): Read<H2Response> {
  let status = -1;
  let regular = false;
  let contentLength = -1;
  const fields: HeaderField[] = [];
  for (const f of list) {
    const [name, value] = f;
    const fault = fieldFault(name, value);
    if (fault) return fail(fault);
    if (name.charCodeAt(0) === 0x3a) {
      if (regular || name !== ':status' || status >= 0) return fail(`pseudo-header ${printable(name)} misplaced in a response`);
      if (!/^[1-5]\d\d$/.test(value)) return fail(`:status '${printable(value)}'`);
      status = Number(value);
      continue;
    }
    regular = true;
    if (CONNECTION_SPECIFIC.has(name) || NOT_FORWARDED.has(name)) continue;
    if (name === 'content-length') {
      if (contentLength >= 0 || !/^\d{1,15}$/.test(value)) return fail(`content-length '${printable(value)}'`);
      contentLength = Number(value);
    }
    fields.push(f);
  }
  if (status < 0) return fail('missing :status');
  return { ok: true, value: { status, fields, contentLength } };
}

/** A trailer section: regular fields only. */
export function readTrailers(list: ReadonlyArray<HeaderField>): Read<HeaderField[]> {
  const fields: HeaderField[] = [];
  for (const f of list) {
    const fault = fieldFault(f[0], f[1]);
    if (fault) return fail(fault);
    if (f[0].charCodeAt(0) === 0x3a) return fail(`pseudo-header ${printable(f[0])} in trailers`);
    if (CONNECTION_SPECIFIC.has(f[0]) || NOT_FORWARDED.has(f[0])) continue;
    fields.push(f);
  }
  return { ok: true, value: fields };
}

export interface GrpcMethod {
  service: string;
  method: string;
}

const GRPC_PATH = /^\/([A-Za-z_][A-Za-z0-9_.]*)\/([A-Za-z_][A-Za-z0-9_]*)$/;

const grpcMethods = new Map<string, GrpcMethod | null>();

/** gRPC's `/package.Service/Method`, or null when the path is not one (remembered: a channel calls few methods, often). */
export function grpcMethod(path: string): GrpcMethod | null {
  let g = grpcMethods.get(path);
  if (g !== undefined) return g;
  const m = GRPC_PATH.exec(path);
  g = m ? Object.freeze({ service: m[1], method: m[2] }) : null;
  if (grpcMethods.size < 1024 && path.length <= 256) grpcMethods.set(path, g);
  return g;
}

export function isGrpc(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const ct = contentType.toLowerCase();
  return ct === 'application/grpc' || ct.startsWith('application/grpc+') || ct.startsWith('application/grpc;');
}

/** An HTTP/1 head standing for an HTTP/2 request or response, for the deciders and inspectors that read heads. */
export function headOf(method: string, target: string, status: number, fields: ReadonlyArray<HeaderField>): HttpHead {
  const byName = new Map<string, string[]>();
  for (const [n, v] of fields) {
    const list = byName.get(n);
    if (list) list.push(v);
    else byName.set(n, [v]);
  }
  return { method, target, status, version: '1.1', headers: fields as Array<[string, string]>, byName, raw: Buffer.alloc(0) };
}
