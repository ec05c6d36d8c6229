// HTTP/1.1 message framing for a proxy that forwards bytes unchanged: parse a
// head, work out where the body ends (Content-Length, chunked, until close),
// and scan bodies as they stream past without buffering them. Strict where
// laxness enables request smuggling (TE+CL, bad lengths, obs-fold, bare LF).

export interface HttpHead {
  /** Request line fields (requests only). */
  method: string;
  target: string;
  /** Status (responses only; 0 for requests). */
  status: number;
  version: '1.0' | '1.1';
  /** Header fields in order, names as sent. */
  headers: Array<[string, string]>;
  /** Lowercase name → values in order (a proxied exchange looks up a dozen names). */
  byName: Map<string, string[]>;
  /** The head exactly as received, CRLFCRLF included. */
  raw: Buffer;
}

export type HeadResult =
  | { kind: 'need_more' }
  | { kind: 'head'; head: HttpHead; consumed: number }
  | { kind: 'error'; status: 400 | 431 | 505; reason: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CRLFCRLF = Buffer.from('\r\n\r\n');

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/** True when `first` starts like an HTTP/1 request (a known method and a space), or could still. */
export function httpPrefix(first: Buffer): 'yes' | 'maybe' | 'no' {
  const text = first.subarray(0, 8).toString('latin1');
  for (const m of HTTP_METHODS) {
    const want = m + ' ';
    if (text.length >= want.length ? text.startsWith(want) : want.startsWith(text)) return text.length >= want.length ? 'yes' : 'maybe';
  }
  return 'no';
}

/**
 * Every field line valid at once: token name, colon, value of visible/obs-text
 * bytes, space and tab (so no bare CR or LF, no other controls, no obs-fold),
 * each line ended by CRLF or the end of the block. Sticky: tested from the
 * second line on.
 */
const FIELD_LINES = /(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*(?:\r\n(?!$)|$))*$/y;

function parseHead(buf: Buffer, maxBytes: number, isRequest: boolean): HeadResult {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) {
    if (buf.length > maxBytes) return { kind: 'error', status: 431, reason: `header block exceeds ${maxBytes} bytes` };
    return { kind: 'need_more' };
  }
  if (end + 4 > maxBytes) return { kind: 'error', status: 431, reason: `header block exceeds ${maxBytes} bytes` };
  const text = buf.toString('latin1', 0, end);
  const firstEnd = text.indexOf('\r\n');
  if (firstEnd >= 0) {
    FIELD_LINES.lastIndex = firstEnd + 2;
    // Some line is invalid: the line-by-line parse names which and why.
    if (!FIELD_LINES.test(text)) return parseHeadLines(buf, text, end, isRequest);
  }
  const first = firstEnd < 0 ? text : text.slice(0, firstEnd);
  if (first.includes('\n') || first.includes('\r')) return { kind: 'error', status: 400, reason: 'bare CR or LF in header block' };
  const head = emptyHead(buf.subarray(0, end + 4));
  const problem = parseStartLine(head, first, isRequest);
  if (problem) return problem;
  if (firstEnd < 0) return { kind: 'head', head, consumed: end + 4 };
  // FIELD_LINES validated every line: each has a colon, and CR/LF only as line ends.
  let i = firstEnd + 2;
  const n = text.length;
  while (i < n) {
    let eol = text.indexOf('\r\n', i);
    if (eol < 0) eol = n;
    const colon = text.indexOf(':', i);
    // The value without surrounding spaces and tabs, sliced once.
    let vs = colon + 1;
    let ve = eol;
    while (vs < ve && isOws(text.charCodeAt(vs))) vs++;
    while (ve > vs && isOws(text.charCodeAt(ve - 1))) ve--;
    addField(head, text.slice(i, colon), text.slice(vs, ve));
    i = eol + 2;
  }
  return { kind: 'head', head, consumed: end + 4 };
}

const isOws = (c: number) => c === 0x20 || c === 0x09;

/** A head with nothing parsed yet; `raw` is the whole header block (CRLFCRLF included). */
function emptyHead(raw: Buffer): HttpHead {
  return { method: '', target: '', status: 0, version: '1.1', headers: [], byName: new Map(), raw };
}

function addField(head: HttpHead, name: string, value: string): void {
  head.headers.push([name, value]);
  const key = name.toLowerCase();
  const list = head.byName.get(key);
  if (list === undefined) head.byName.set(key, [value]);
  else list.push(value);
}

/** Fills method/target/version (requests) or version/status (responses) from the start line; returns the error, or null. */
function parseStartLine(head: HttpHead, first: string, isRequest: boolean): HeadResult | null {
  if (isRequest) {
    const m = REQUEST_LINE.exec(first);
    if (!m) return { kind: 'error', status: 400, reason: 'malformed request line' };
    if (m[3] !== '1.1' && m[3] !== '1.0') return { kind: 'error', status: 505, reason: `HTTP version ${m[3]}` };
    if (/[\x00-\x20\x7f]/.test(m[2])) return { kind: 'error', status: 400, reason: 'control character in request target' };
    head.method = m[1];
    head.target = m[2];
    head.version = m[3];
  } else {
    const m = /^HTTP\/(1\.[01]) (\d{3})(?: .*)?$/.exec(first);
    if (!m) return { kind: 'error', status: 400, reason: 'malformed status line' };
    head.version = m[1] as '1.0' | '1.1';
    head.status = Number(m[2]);
  }
  return null;
}

/** method SP target SP HTTP/d.d, the method a token (one match does what a split and a token test did). */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ ]+) HTTP\/(\d\.\d)$/;

/** The line-by-line parse: slower, and says exactly what is wrong. */
function parseHeadLines(buf: Buffer, text: string, end: number, isRequest: boolean): HeadResult {
  const lines = text.split('\r\n');
  if (lines.some((l) => l.includes('\n') || l.includes('\r')))
    return { kind: 'error', status: 400, reason: 'bare CR or LF in header block' };
  const head = emptyHead(buf.subarray(0, end + 4));
  const problem = parseStartLine(head, lines[0], isRequest);
  if (problem) return problem;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith(' ') || line.startsWith('\t')) return { kind: 'error', status: 400, reason: 'obsolete header line folding' };
    const colon = line.indexOf(':');
    if (colon <= 0) return { kind: 'error', status: 400, reason: `malformed header line ${i}` };
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return { kind: 'error', status: 400, reason: `invalid header name '${name.slice(0, 40)}'` };
    const value = line.slice(colon + 1).trim();
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return { kind: 'error', status: 400, reason: `control character in header '${name}'` };
    addField(head, name, value);
  }
  return { kind: 'head', head, consumed: end + 4 };
}

export const parseRequestHead = (buf: Buffer, maxBytes: number) => parseHead(buf, maxBytes, true);
export const parseResponseHead = (buf: Buffer, maxBytes: number) => parseHead(buf, maxBytes, false);

const NO_VALUES: readonly string[] = Object.freeze([]);
/** Values of every `name` header in order (`name` lowercase). Do not modify the array. */
export function headerValues(head: HttpHead, name: string): readonly string[] {
  return head.byName.get(name) ?? NO_VALUES;
}

export function header(head: HttpHead, name: string): string | undefined {
  return head.byName.get(name)?.[0];
}

const NO_TOKENS: readonly string[] = Object.freeze([]);

/** Comma-separated tokens of all `name` headers, lowercased. Do not modify the array. */
export function headerTokens(head: HttpHead, name: string): readonly string[] {
  const values = head.byName.get(name);
  if (values === undefined) return NO_TOKENS;
  if (values.length === 1 && !values[0].includes(',')) {
    // One value, one token: the common case, without a split.
    const token = values[0].trim().toLowerCase();
    return token ? [token] : NO_TOKENS;
  }
  const out: string[] = [];
  for (const v of values)
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token) out.push(token);
    }
  return out;
}

export type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'until_close' };

export type FramingResult = Framing | { kind: 'error'; reason: string };

const DIGITS = /^\d{1,15}$/;

function contentLength(head: HttpHead): number | { error: string } | undefined {
  const raw = headerValues(head, 'content-length');
  if (raw.length === 0) return undefined;
  if (raw.length === 1 && DIGITS.test(raw[0])) return Number(raw[0]);
  const values = raw.flatMap((v) => v.split(',')).map((v) => v.trim());
  if (!values.every((v) => DIGITS.test(v))) return { error: 'invalid Content-Length' };
  if (new Set(values).size > 1) return { error: 'conflicting Content-Length values' };
  return Number(values[0]);
}

export function requestFraming(head: HttpHead): FramingResult {
  const te = headerTokens(head, 'transfer-encoding');
  const cl = contentLength(head);
  if (te.length) {
    if (cl !== undefined) return { kind: 'error', reason: 'both Transfer-Encoding and Content-Length' };
    if (te[te.length - 1] !== 'chunked') return { kind: 'error', reason: `unsupported Transfer-Encoding '${te.join(', ')}'` };
    return { kind: 'chunked' };
  }
  if (typeof cl === 'object') return { kind: 'error', reason: cl.error };
  if (cl === undefined || cl === 0) return { kind: 'none' };
  return { kind: 'length', length: cl };
}

export function responseFraming(head: HttpHead, requestMethod: string): FramingResult {
  if (requestMethod === 'HEAD' || (head.status >= 100 && head.status < 200) || head.status === 204 || head.status === 304)
    return { kind: 'none' };
  if (requestMethod === 'CONNECT' && head.status >= 200 && head.status < 300) return { kind: 'none' };
  const te = headerTokens(head, 'transfer-encoding');
  if (te.length) return te[te.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'until_close' };
  const cl = contentLength(head);
  if (typeof cl === 'object') return { kind: 'error', reason: cl.error };
  if (cl === undefined) return { kind: 'until_close' };
  return cl === 0 ? { kind: 'none' } : { kind: 'length', length: cl };
}

/** Whether the connection stays open after this message. */
export function keepAlive(head: HttpHead): boolean {
  const conn = headerTokens(head, 'connection');
  if (conn.includes('close')) return false;
  return head.version === '1.1' || conn.includes('keep-alive');
}

const enum C {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  FinalLf,
  Done,
}

/**
 * Finds the end of a chunked body while its bytes pass through unchanged, and
 * hands the decoded data to `onData` (for inspection; may be omitted).
 */
export class ChunkedScanner {
  #state = C.Size;
  #remaining = 0;
  #sizeDigits = 0;
  #lineBytes = 0;
  constructor(private readonly onData?: (data: Buffer) => void) {}

  get done(): boolean {
    return this.#state === C.Done;
  }

  /** Consumes from `buf`; returns bytes belonging to the body (all of buf unless the body ended inside it). Throws on malformed framing. */
  push(buf: Buffer): number {
    let i = 0;
    while (i < buf.length && this.#state !== C.Done) {
      if (this.#state === C.Data) {
        const n = Math.min(this.#remaining, buf.length - i);
        if (this.onData) this.onData(buf.subarray(i, i + n));
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = C.DataCr;
        continue;
      }
      const b = buf[i++];
      switch (this.#state) {
        case C.Size: {
          const v = hexValue(b);
          if (v >= 0) {
            if (++this.#sizeDigits > 12) throw new Error('chunk size too large');
            this.#remaining = this.#remaining * 16 + v;
          } else if (this.#sizeDigits === 0) throw new Error('chunk size missing');
          else if (b === 0x3b || b === 0x20 || b === 0x09) {
            this.#state = C.Ext;
            this.#lineBytes = 0;
          } else if (b === 0x0d) this.#state = C.SizeLf;
          else throw new Error('malformed chunk size');
          break;
        }
        case C.Ext:
          this.#lineByte(b, 4096, C.SizeLf, 'malformed chunk extension');
          break;
        case C.SizeLf:
          if (b !== 0x0a) throw new Error('chunk size line not ended by CRLF');
          this.#sizeDigits = 0;
          if (this.#remaining === 0) this.#state = C.TrailerStart;
          else this.#state = C.Data;
          break;
        case C.DataCr:
          this.#expectByte(b, 0x0d, C.DataLf, 'chunk data not followed by CRLF');
          break;
        case C.DataLf:
          this.#expectByte(b, 0x0a, C.Size, 'chunk data not followed by CRLF');
          break;
        case C.TrailerStart:
          if (b === 0x0d) this.#state = C.FinalLf;
          else {
            this.#state = C.Trailer;
            this.#lineBytes = 1;
          }
          break;
        case C.Trailer:
          this.#lineByte(b, 8192, C.TrailerLf, 'malformed trailer');
          break;
        case C.TrailerLf:
          this.#expectByte(b, 0x0a, C.TrailerStart, 'malformed trailer');
          break;
        case C.FinalLf:
          this.#expectByte(b, 0x0a, C.Done, 'chunked body not ended by CRLF');
          break;
      }
    }
    return i;
  }

  /** A framing byte that must be `want`: moves to `next`, or refuses the body naming `what`. */
  #expectByte(b: number, want: number, next: C, what: string): void {
    if (b !== want) throw new Error(what);
    this.#state = next;
  }

  /** A byte of a line (extension, trailer) of at most `limit` bytes: CR moves to `onCr`; a bare LF or an overlong line is refused. */
  #lineByte(b: number, limit: number, onCr: C, what: string): void {
    if (b === 0x0d) this.#state = onCr;
    else if (b === 0x0a || ++this.#lineBytes > limit) throw new Error(what);
  }
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/** Tracks one body through its framing: how many of the next bytes belong to it, and when it ends. */
export class BodyTracker {
  #remaining: number;
  #chunked: ChunkedScanner | null;
  #untilClose: boolean;
  /** Body bytes seen so far (framing bytes included for chunked). */
  seen = 0;

  constructor(framing: Framing, onData?: (data: Buffer) => void) {
    this.#remaining = framing.kind === 'length' ? framing.length : 0;
    this.#chunked = framing.kind === 'chunked' ? new ChunkedScanner(onData) : null;
    this.#untilClose = framing.kind === 'until_close';
    this.onData = framing.kind === 'chunked' ? undefined : onData;
  }
  private readonly onData?: (data: Buffer) => void;

  get done(): boolean {
    if (this.#chunked) return this.#chunked.done;
    if (this.#untilClose) return false;
    return this.#remaining === 0;
  }

  /** How many leading bytes of `buf` belong to this body. Throws on malformed chunked framing. */
  take(buf: Buffer): number {
    let n: number;
    if (this.#chunked) n = this.#chunked.push(buf);
    else if (this.#untilClose) n = buf.length;
    else n = Math.min(this.#remaining, buf.length);
    if (!this.#chunked && !this.#untilClose) this.#remaining -= n;
    if (this.onData && n > 0) this.onData(buf.subarray(0, n));
    this.seen += n;
    return n;
  }
}

/** A complete response the proxy itself writes (403, 400, 502…). */
export function simpleResponse(
  status: number,
  reason: string,
  body: string,
  contentType: string,
  close: boolean,
  extra: Array<[string, string]> = [],
): Buffer {
  const bodyBuf = Buffer.from(body);
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    `Content-Type: ${contentType}`,
    `Content-Length: ${bodyBuf.length}`,
    ...extra.map(([k, v]) => `${k}: ${v}`),
  ];
  if (close) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), bodyBuf]);
}
