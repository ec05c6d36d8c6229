// A raw HTTP/2 client for wire-level attack tests: it puts on the wire exactly the
// bytes a test builds (frames of any type, flags, stream and payload, or arbitrary
// bytes), so it can send what a well-behaved client library refuses to (malformed
// header blocks, floods, bad padding, wrong stream ids). Header blocks are HPACK
// literals without Huffman, valid for any decoder; what comes back is split into
// frames and collected, for a test to await a frame matching a predicate or the
// connection's close. It decodes no HPACK beyond the indexed :status of a response.
import net from 'node:net';
import tls from 'node:tls';
import {
  H2_ERR as H2_ERROR,
  H2_FLAG as FLAG,
  H2_FRAME as FRAME,
  h2Frame as frame,
  H2_PREFACE,
  H2_SETTING as SETTING,
} from '../enforcer/dataplane/index.js';

// The RFC 9113 constants and the frame builder are the dataplane's own (interoperation with
// nghttp2 in npm test checks them); what this client adds is what a relay never sends.
export { FLAG, FRAME, frame, H2_ERROR, H2_PREFACE, SETTING };

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** An HPACK integer (RFC 7541 §5.1) with an N-bit prefix, `high` the bits above the prefix in the first byte. */
export function hpackInt(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let n = value - max;
  while (n >= 128) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A string literal, no Huffman (H bit clear), 7-bit-prefix length (RFC 7541 §5.2). */
export function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
  return Buffer.concat([hpackInt(b.length, 7), b]);
}

/** Literal fields without indexing, new name (0x00 prefix; RFC 7541 §6.2.2), in order: the bytes as given. */
export function hpackLiteral(fields: Array<[string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([n, v]) => [Buffer.from([0x00]), hpackString(n), hpackString(v)]));
}

/** A literal with incremental indexing, new name (0x40; RFC 7541 §6.2.1): the field enters the dynamic table. */
export function hpackIndexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** An indexed field (RFC 7541 §6.1): static 1..61, dynamic from 62 (62 the newest entry). */
export function hpackIndexed(index: number): Buffer {
  return hpackInt(index, 7, 0x80);
}

export function settingsPayload(pairs: Array<[number, number]>): Buffer {
  const b = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** The error code of a RST_STREAM, or of a GOAWAY (after its last-stream-id). */
export function errorCodeOf(f: Frame): number {
  return f.type === FRAME.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}

/** A request's pseudo-headers in the RFC's order, then the given regular fields. */
export function requestFields(
  path: string,
  extra: Array<[string, string]> = [],
  method = 'GET',
  authority = 'localhost',
  scheme = 'https',
): Array<[string, string]> {
  return [[':method', method], [':scheme', scheme], [':path', path], [':authority', authority], ...extra];
}

/** The :status of a response header block when its first field is a static indexed status (RFC 7541 Appendix A, 8..14), else null. */
export function indexedStatus(block: Buffer): number | null {
  const byIndex: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };
  return block.length && block[0] & 0x80 ? (byIndex[block[0] & 0x7f] ?? null) : null;
}

/** A raw HTTP/2 connection: writes what it is told, collects the frames it reads. */
export class H2Wire {
  readonly frames: Frame[] = [];
  /** The peer's SETTINGS (the first non-ACK SETTINGS frame), id → value. */
  readonly peerSettings = new Map<number, number>();
  #buf: Buffer = Buffer.alloc(0);
  #waiters = new Set<() => void>();
  #closed = false;
  #autoAck = true;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.#read(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  /** TLS to `port` with ALPN h2 trusting `ca` (or cleartext h2c with `tls: false`), the preface and SETTINGS written, the peer's SETTINGS awaited and acknowledged. */
  static async connect(opts: {
    port: number;
    host?: string;
    ca?: string;
    servername?: string;
    tls?: boolean;
    settings?: Array<[number, number]>;
    timeoutMs?: number;
  }): Promise<H2Wire> {
    const host = opts.host ?? '127.0.0.1';
    const socket =
      opts.tls === false
        ? net.connect({ host, port: opts.port })
        : tls.connect({ host, port: opts.port, servername: opts.servername ?? 'localhost', ca: opts.ca, ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve, reject) => {
      socket.once(opts.tls === false ? 'connect' : 'secureConnect', () => resolve());
      socket.once('error', reject);
    });
    if (opts.tls !== false && (socket as tls.TLSSocket).alpnProtocol !== 'h2') {
      socket.destroy();
      throw new Error(`ALPN h2 not agreed (${String((socket as tls.TLSSocket).alpnProtocol)})`);
    }
    const c = new H2Wire(socket);
    c.write(Buffer.concat([H2_PREFACE, frame(FRAME.SETTINGS, 0, 0, settingsPayload(opts.settings ?? []))]));
    await c.waitFor((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK), opts.timeoutMs ?? 5000);
    return c;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stop acknowledging the peer's SETTINGS (the flood tests read nothing anyway). */
  set autoAck(v: boolean) {
    this.#autoAck = v;
  }

  /** Writes raw bytes; resolves when the socket took them (false when it is gone). */
  write(bytes: Buffer): Promise<boolean> {
    if (this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => this.socket.write(bytes, (err) => resolve(!err)));
  }

  send(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Promise<boolean> {
    return this.write(frame(type, flags, stream, payload));
  }

  /** HEADERS with END_HEADERS (and END_STREAM unless `endStream` is false), the block from hpackLiteral(fields). */
  headers(stream: number, fields: Array<[string, string]>, endStream = true): Promise<boolean> {
    return this.send(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), stream, hpackLiteral(fields));
  }

  /** The first frame (already read or still to come) matching `pred`; null when none within `ms` or the connection closed without one. */
  waitFor(pred: (f: Frame) => boolean, ms = 3000): Promise<Frame | null> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const f = this.frames.find(pred);
        if (f || this.#closed) {
          clearTimeout(t);
          this.#waiters.delete(check);
          resolve(f ?? null);
          return true;
        }
        return false;
      };
      const t = setTimeout(() => {
        this.#waiters.delete(check);
        resolve(this.frames.find(pred) ?? null);
      }, ms);
      if (!check()) this.#waiters.add(check);
    });
  }

  /** A RST_STREAM on `stream` or a GOAWAY, whichever comes first. */
  refusal(stream: number, ms = 3000): Promise<Frame | null> {
    return this.waitFor((f) => (f.type === FRAME.RST_STREAM && f.stream === stream) || f.type === FRAME.GOAWAY, ms);
  }

  goaway(): Frame | undefined {
    return this.frames.find((f) => f.type === FRAME.GOAWAY);
  }

  /** Whether the connection closed within `ms`. */
  waitClosed(ms = 3000): Promise<boolean> {
    if (this.#closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): boolean => {
        if (!this.#closed) return false;
        clearTimeout(t);
        this.#waiters.delete(check);
        resolve(true);
        return true;
      };
      const t = setTimeout(() => {
        this.#waiters.delete(check);
        resolve(this.#closed);
      }, ms);
      this.#waiters.add(check);
    });
  }

  /** A well-formed GET on `stream`: the response's indexed :status (0 when not one of the static ones) and body, or null when refused or none came. */
  async get(stream: number, path: string, ms = 5000): Promise<{ status: number; body: string } | null> {
    await this.headers(stream, requestFields(path));
    const end = await this.waitFor(
      (f) =>
        f.stream === stream &&
        (f.type === FRAME.RST_STREAM || ((f.flags & FLAG.END_STREAM) !== 0 && (f.type === FRAME.DATA || f.type === FRAME.HEADERS))),
      ms,
    );
    if (!end || end.type === FRAME.RST_STREAM) return null;
    const mine = this.frames.filter((f) => f.stream === stream);
    const head = mine.find((f) => f.type === FRAME.HEADERS);
    const body = Buffer.concat(mine.filter((f) => f.type === FRAME.DATA).map((f) => dataOf(f))).toString();
    return { status: head ? (indexedStatus(head.payload) ?? 0) : 0, body };
  }

  /** Stop reading: the kernel buffers fill and the peer's writes back up. */
  pause(): void {
    this.socket.pause();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** A compact trace of what came back, for assertion messages. */
  trace(): string {
    const names = Object.fromEntries(Object.entries(FRAME).map(([k, v]) => [v, k]));
    return this.frames
      .filter((f) => f.type !== FRAME.SETTINGS && f.type !== FRAME.WINDOW_UPDATE && f.type !== FRAME.PING)
      .map((f) =>
        f.type === FRAME.RST_STREAM || f.type === FRAME.GOAWAY
          ? `${names[f.type]}(${f.stream}, ${errorCodeOf(f)})`
          : `${names[f.type] ?? f.type}(${f.stream})`,
      )
      .join(' ');
  }

  #read(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    const { frames, used } = splitFrames(this.#buf);
    for (const f of frames) {
      this.frames.push(f);
      if (f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK)) {
        if (!this.peerSettings.size)
          for (let j = 0; j + 6 <= f.payload.length; j += 6)
            this.peerSettings.set(f.payload.readUInt16BE(j), f.payload.readUInt32BE(j + 2));
        if (this.#autoAck) void this.send(FRAME.SETTINGS, FLAG.ACK, 0);
      }
    }
    this.#buf = this.#buf.subarray(used);
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}

/** The whole frames at the start of `buf` (payloads copied) and the bytes they take; a partial frame is left. */
export function splitFrames(buf: Buffer): { frames: Frame[]; used: number } {
  const frames: Frame[] = [];
  let i = 0;
  while (i + 9 <= buf.length) {
    const len = buf.readUIntBE(i, 3);
    if (i + 9 + len > buf.length) break;
    frames.push({
      type: buf[i + 3],
      flags: buf[i + 4],
      stream: buf.readUInt32BE(i + 5) & 0x7fffffff,
      payload: Buffer.from(buf.subarray(i + 9, i + 9 + len)),
    });
    i += 9 + len;
  }
  return { frames, used: i };
}

/** A DATA frame's data, without its padding. */
export function dataOf(f: Frame): Buffer {
  if (!(f.flags & FLAG.PADDED)) return f.payload;
  const pad = f.payload[0];
  return f.payload.subarray(1, f.payload.length - pad);
}
