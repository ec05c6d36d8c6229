// TLS ClientHello parsing: enough to read SNI and ALPN from the first flight.
// The hello may span several TLS records and arrive in any number of reads;
// callers feed the bytes seen so far and get "need more", a result, or a reason
// the bytes are not a ClientHello.

export interface ClientHello {
  /** server_name (host_name type), lowercased; undefined when absent. */
  sni?: string;
  alpn: string[];
  /** Legacy record/handshake version, e.g. 0x0303. */
  version: number;
}

export type ClientHelloResult = { status: 'need_more' } | { status: 'ok'; hello: ClientHello } | { status: 'invalid'; reason: string };

/** Largest ClientHello we wait for (post-quantum key shares make them ~2 KiB; 64 KiB is generous). */
export const MAX_CLIENT_HELLO = 64 * 1024;

export function looksLikeTls(first: Buffer): boolean {
  return first.length >= 1 && first[0] === 0x16 && (first.length < 2 || first[1] === 0x03);
}

/** Reassembles the handshake bytes carried by the leading handshake records. */
function handshakeBytes(buf: Buffer): { data: Buffer; complete: boolean } | { error: string } {
  const parts: Buffer[] = [];
  let off = 0;
  let total = 0;
  let need = -1; // full handshake message length once known
  while (off + 5 <= buf.length) {
    const type = buf[off];
    if (type !== 0x16) return { error: `record type ${type} before the ClientHello completed` };
    if (buf[off + 1] !== 0x03) return { error: `record version 0x${buf.readUInt16BE(off + 1).toString(16)}` };
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return { error: `record length ${len}` };
    if (off + 5 + len > buf.length) break;
    parts.push(buf.subarray(off + 5, off + 5 + len));
    total += len;
    off += 5 + len;
    if (need < 0 && total >= 4) {
      const hs = Buffer.concat(parts);
      need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO) return { error: `ClientHello of ${need} bytes exceeds ${MAX_CLIENT_HELLO}` };
    }
    if (need >= 0 && total >= need) return { data: Buffer.concat(parts).subarray(0, need), complete: true };
  }
  if (buf.length >= MAX_CLIENT_HELLO) return { error: `ClientHello larger than ${MAX_CLIENT_HELLO} bytes` };
  return { data: Buffer.concat(parts), complete: false };
}

export function parseClientHello(buf: Buffer): ClientHelloResult {
  if (buf.length === 0) return { status: 'need_more' };
  if (buf[0] !== 0x16) return { status: 'invalid', reason: 'not a TLS handshake record' };
  const hs = handshakeBytes(buf);
  if ('error' in hs) return { status: 'invalid', reason: hs.error };
  if (hs.data.length >= 1 && hs.data[0] !== 0x01) return { status: 'invalid', reason: `handshake type ${hs.data[0]} is not ClientHello` };
  if (!hs.complete) return { status: 'need_more' };
  try {
    return { status: 'ok', hello: parseHelloBody(hs.data.subarray(4)) };
  } catch (err) {
    return { status: 'invalid', reason: (err as Error).message };
  }
}

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  need(n: number, what: string): void {
    if (this.off + n > this.buf.length) throw new Error(`ClientHello truncated in ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.off++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
}

function parseHelloBody(body: Buffer): ClientHello {
  const r = new Reader(body);
  const version = r.u16('version');
  r.bytes(32, 'random');
  r.bytes(r.u8('session id length'), 'session id');
  const suites = r.u16('cipher suites length');
  if (suites === 0 || suites % 2) throw new Error(`cipher suites length ${suites}`);
  r.bytes(suites, 'cipher suites');
  const comp = r.u8('compression methods length');
  if (comp === 0) throw new Error('no compression methods');
  r.bytes(comp, 'compression methods');
  const hello: ClientHello = { version, alpn: [] };
  if (r.off === body.length) return hello; // no extensions (SSLv3-style hello)
  const extLen = r.u16('extensions length');
  const ext = new Reader(r.bytes(extLen, 'extensions'));
  const seen = new Set<number>();
  while (ext.off < ext.buf.length) {
    const type = ext.u16('extension type');
    const data = ext.bytes(ext.u16('extension length'), 'extension');
    if (seen.has(type)) throw new Error(`duplicate extension ${type}`);
    seen.add(type);
    // Encrypted ClientHello (and its ESNI draft): the name the connection is for is hidden
    // inside, and the outer SNI only names the front. What cannot be read is not decided.
    if (type === EXT_ECH || type === EXT_ESNI) throw new Error('encrypted_client_hello: the server name is encrypted (refused)');
    if (type === 0) hello.sni = parseSni(data);
    else if (type === 16) hello.alpn = parseAlpn(data);
  }
  return hello;
}

const EXT_ECH = 0xfe0d;
const EXT_ESNI = 0xffce;

/** RFC 6066 server_name: exactly one host_name entry. Several names (a server may pick any) or other types are refused. */
function parseSni(data: Buffer): string | undefined {
  const r = new Reader(data);
  const list = new Reader(r.bytes(r.u16('server name list length'), 'server name list'));
  let sni: string | undefined;
  while (list.off < list.buf.length) {
    const type = list.u8('server name type');
    const name = list.bytes(list.u16('server name length'), 'server name');
    if (type !== 0) throw new Error(`server name type ${type} (only host_name is decided)`);
    if (sni !== undefined) throw new Error('more than one server name');
    const text = name.toString('latin1');
    // RFC 6066: ASCII hostname, no trailing dot; reject anything else instead of guessing.
    if (name.length === 0 || name.length > 253 || !/^[A-Za-z0-9._-]+$/.test(text)) throw new Error('server name is not a valid hostname');
    sni = text.toLowerCase();
  }
  if (r.off !== data.length) throw new Error('bytes after the server name list');
  return sni;
}

function parseAlpn(data: Buffer): string[] {
  const r = new Reader(data);
  const list = new Reader(r.bytes(r.u16('ALPN list length'), 'ALPN list'));
  const out: string[] = [];
  while (list.off < list.buf.length) {
    const len = list.u8('ALPN protocol length');
    if (len === 0) throw new Error('empty ALPN protocol');
    out.push(list.bytes(len, 'ALPN protocol').toString('latin1'));
  }
  return out;
}
