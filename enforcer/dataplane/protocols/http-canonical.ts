// The canonical form of an HTTP/1 request, the only form the proxy forwards:
// the request target in origin form with its path normalised (percent-encoding
// and dot segments) before the decision, Host set to the decided authority,
// framing re-emitted by the proxy (one Content-Length, or chunked re-encoded),
// hop-by-hop fields dropped. An upstream then reads exactly what was decided.
import type { Framing, HttpHead } from './http1.js';

export type TargetResult = { ok: true; path: string; authority?: string } | { ok: false; reason: string };

const HEX = '0123456789ABCDEF';

/** RFC 3986 unreserved: decoded when percent-encoded. */
function isUnreserved(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e
  );
}

/** Bytes kept as they are in a path or query besides unreserved: sub-delims, ':', '@', '/', and '?' in a query. */
const KEEP = new Set([..."!$&'()*+,;=:@/"].map((c) => c.charCodeAt(0)));

function hexVal(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

/** Bytes a canonical path keeps as they are (1), and those a query also keeps (2: '?'). */
const AS_IS = new Uint8Array(128);
for (let b = 0; b < 128; b++) if (isUnreserved(b) || KEEP.has(b)) AS_IS[b] = 1;
AS_IS[0x3f] = 2;

/** Percent-encoding made canonical: unreserved decoded, other escapes upper-case, anything else outside the allowed set encoded. */
function canonicalEncoding(s: string, query: boolean): string | null {
  // Most targets are canonical already: checked in one pass, returned as they are.
  let i = 0;
  for (; i < s.length; i++) {
    const b = s.charCodeAt(i);
    const k = b < 128 ? AS_IS[b] : 0;
    if (k === 0 || (k === 2 && !query)) break;
  }
  if (i === s.length) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const b = s.charCodeAt(i);
    if (b === 0x25) {
      const h = i + 2 < s.length ? hexVal(s.charCodeAt(i + 1)) : -1;
      const l = i + 2 < s.length ? hexVal(s.charCodeAt(i + 2)) : -1;
      if (h < 0 || l < 0) return null;
      const v = h * 16 + l;
      out += isUnreserved(v) ? String.fromCharCode(v) : `%${HEX[h]}${HEX[l]}`;
      i += 2;
    } else if (isUnreserved(b) || KEEP.has(b) || (query && b === 0x3f)) out += s[i];
    else if (b > 0xff) return null;
    else out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

/** RFC 3986 §5.2.4 remove_dot_segments on an absolute path. */
function removeDotSegments(path: string): string {
  // A dot segment starts right after a '/' (the path starts with one).
  if (!path.includes('/.')) return path;
  const out: string[] = [];
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i];
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

const ABSOLUTE = /^http:\/\/([^/?#@]+)([^#]*)$/i;

/**
 * The request target as decided and forwarded: origin form ("/path?query"),
 * normalised. Absolute form gives its authority (which must equal Host); `*` only for OPTIONS.
 */
export function canonicalTarget(method: string, target: string): TargetResult {
  if (target === '*') return method === 'OPTIONS' ? { ok: true, path: '*' } : { ok: false, reason: "'*' target outside OPTIONS" };
  let authority: string | undefined;
  let rest = target;
  if (!target.startsWith('/')) {
    const m = ABSOLUTE.exec(target);
    if (!m) return { ok: false, reason: 'request target is neither origin form nor an http:// absolute URI' };
    authority = m[1];
    rest = m[2] || '/';
    if (!rest.startsWith('/')) rest = `/${rest}`;
  }
  if (rest.includes('#')) return { ok: false, reason: 'fragment in request target' };
  if (rest.includes('\\')) return { ok: false, reason: 'backslash in request target' };
  const q = rest.indexOf('?');
  const rawPath = q < 0 ? rest : rest.slice(0, q);
  const path = canonicalEncoding(rawPath, false);
  const query = q < 0 ? '' : canonicalEncoding(rest.slice(q + 1), true);
  if (path === null || query === null) return { ok: false, reason: 'invalid percent-encoding in request target' };
  const normal = removeDotSegments(path);
  return { ok: true, path: q < 0 ? normal : `${normal}?${query}`, authority };
}

/**
 * An authority (Host, :authority, or an absolute target's) split into its host — lower case,
 * an IPv6 literal without brackets, no trailing dot — and the port as the client wrote it
 * ('' when none). What is not host[:digits] or [v6][:digits] comes back whole as the host,
 * which isDecidableHost then refuses.
 */
export function splitAuthority(authority: string): { host: string; port: string } {
  let host = authority;
  let port = '';
  if (authority.startsWith('[')) {
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority);
    if (v6) {
      host = v6[1];
      port = v6[2] ?? '';
    }
  } else {
    const at = authority.lastIndexOf(':');
    if (at >= 0 && /^\d*$/.test(authority.slice(at + 1))) {
      host = authority.slice(0, at);
      port = authority.slice(at + 1);
    }
  }
  host = host.toLowerCase();
  return { host: host.endsWith('.') ? host.slice(0, -1) : host, port };
}

/** A host a request may be decided on: a name or address of RFC 3986 reg-name/IP characters, not empty. */
export function isDecidableHost(host: string): boolean {
  return /^[a-z0-9._~!$&'()*+,;=:%-]+$/.test(host);
}

/** The authority forwarded for a decided host and port: bracketed when IPv6, the client's port kept. */
export function decidedAuthority(host: string, port: string): string {
  return (host.includes(':') ? `[${host}]` : host) + (port ? `:${port}` : '');
}

/** Fields the proxy writes itself or that only concern the hop to the proxy. */
const DROPPED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'http2-settings',
  'proxy-authorization',
]);

export interface CanonicalRequest {
  method: string;
  path: string;
  /** The decided authority: lowercase host, bracketed when IPv6, with the port the client named. */
  authority: string;
  version: '1.0' | '1.1';
  framing: Framing;
  keepAlive: boolean;
  /** The upgrade token the policy permitted (forwarded with Connection: upgrade). */
  upgrade?: string;
  expect100?: boolean;
}

/**
 * The head the upstream gets. Field values were validated by the parser (no CR/LF/controls).
 * `body`: a held body, appended in the same buffer (one write upstream).
 */
export function canonicalHead(head: HttpHead, r: CanonicalRequest, body?: Buffer): Buffer {
  const nominated = head.byName.get('connection');
  let skip: Set<string> | null = null;
  if (nominated)
    for (const v of nominated)
      for (const t of v.split(',')) {
        const name = t.trim().toLowerCase();
        if (name) (skip ??= new Set()).add(name);
      }
  let text = `${r.method} ${r.path} HTTP/${r.version}\r\nHost: ${r.authority}\r\n`;
  for (const [name, value] of head.headers) {
    const key = name.toLowerCase();
    if (DROPPED.has(key) || skip?.has(key)) continue;
    text += `${name}: ${value}\r\n`;
  }
  if (r.framing.kind === 'length') text += `Content-Length: ${r.framing.length}\r\n`;
  else if (r.framing.kind === 'chunked') text += 'Transfer-Encoding: chunked\r\n';
  if (r.expect100) text += 'Expect: 100-continue\r\n';
  if (r.upgrade) text += `Connection: upgrade\r\nUpgrade: ${r.upgrade}\r\n`;
  else if (!r.keepAlive) text += 'Connection: close\r\n';
  else if (r.version === '1.0') text += 'Connection: keep-alive\r\n';
  text += '\r\n';
  if (!body?.length) return Buffer.from(text, 'latin1');
  const out = Buffer.allocUnsafe(text.length + body.length);
  out.write(text, 0, 'latin1');
  body.copy(out, text.length);
  return out;
}

/** One chunk of a re-encoded chunked body. */
export function chunk(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF];
}

const CRLF = Buffer.from('\r\n');
export const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** Methods whose requests define no body: one arriving with a body is refused (a server ignoring it would read it as the next request). */
export const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'TRACE', 'CONNECT']);

/** The charset parameter of a Content-Type, lowercased, or undefined. */
export function charsetOf(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const m = /;\s*charset\s*=\s*("?)([^";\s]*)\1/i.exec(contentType);
  return m ? m[2].toLowerCase() : undefined;
}

const jsonTypes = new Map<string, boolean>();

/** A JSON media type (application/json, anything +json). */
export function isJsonType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  // A connection asks this of the same few Content-Type values again and again.
  let json = jsonTypes.get(contentType);
  if (json === undefined) {
    const media = contentType.split(';', 1)[0].trim().toLowerCase();
    json = media === 'application/json' || media.endsWith('+json');
    if (jsonTypes.size < 256) jsonTypes.set(contentType, json);
  }
  return json;
}
