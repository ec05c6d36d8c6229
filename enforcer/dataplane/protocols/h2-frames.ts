// HTTP/2 framing (RFC 9113 §4, §6): the frame types, flags, error codes and
// settings the relay uses, a reader that cuts a byte stream into frames (bounded
// by the SETTINGS_MAX_FRAME_SIZE we advertised, checked on the 9-byte header
// before the payload is waited for), and builders for the frames we write.

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ERR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME = 16_384;
export const MAX_WINDOW = 2 ** 31 - 1;

/** A protocol violation: `stream` 0 is a connection error (GOAWAY), else a stream error (RST_STREAM). */
export class H2Error extends Error {
  constructor(
    readonly h2code: number,
    readonly stream: number,
    message: string,
  ) {
    super(message);
  }
}

export type FrameHandler = (type: number, flags: number, stream: number, payload: Buffer) => boolean;

const EMPTY = Buffer.alloc(0);

/** Cuts a byte stream into frames; a frame longer than `max` is a FRAME_SIZE_ERROR before its payload is held. */
export class FrameReader {
  #rest: Buffer = EMPTY;
  #max: number;

  constructor(max = DEFAULT_MAX_FRAME) {
    this.#max = max;
  }

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.#rest.length;
  }

  /** Feeds bytes; `onFrame` returning false stops reading (the connection ended). */
  feed(chunk: Buffer, onFrame: FrameHandler): void {
    let buf = this.#rest.length ? Buffer.concat([this.#rest, chunk]) : chunk;
    let at = 0;
    while (buf.length - at >= 9) {
      const length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
      if (length > this.#max) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, `a frame of ${length} bytes exceeds the ${this.#max} advertised`);
      if (buf.length - at < 9 + length) break;
      const type = buf[at + 3];
      const flags = buf[at + 4];
      const stream = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      if (!onFrame(type, flags, stream, payload)) {
        this.#rest = EMPTY;
        return;
      }
    }
    buf = at === buf.length ? EMPTY : buf.subarray(at);
    // A partial frame is kept as its own copy, so a large read is not pinned by a few bytes of it.
    this.#rest = buf.length && at > 0 ? Buffer.from(buf) : buf;
  }
}

/** One frame: header and payload in one buffer. */
export function frame(type: number, flags: number, stream: number, payload: Buffer = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  out[0] = payload.length >>> 16;
  out[1] = (payload.length >>> 8) & 0xff;
  out[2] = payload.length & 0xff;
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream, 5);
  payload.copy(out, 9);
  return out;
}

/** A frame header alone (its payload written after it, uncopied). */
export function frameHead(type: number, flags: number, stream: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(9);
  out[0] = length >>> 16;
  out[1] = (length >>> 8) & 0xff;
  out[2] = length & 0xff;
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream, 5);
  return out;
}

export function settingsFrame(settings: ReadonlyArray<[number, number]>): Buffer {
  const p = Buffer.allocUnsafe(6 * settings.length);
  settings.forEach(([id, value], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

export function windowUpdateFrame(stream: number, increment: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(increment, 0);
  return frame(FRAME.WINDOW_UPDATE, 0, stream, p);
}

export function rstFrame(stream: number, code: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(code, 0);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

export function goawayFrame(lastStream: number, code: number, debug = ''): Buffer {
  const d = Buffer.from(debug.slice(0, 256), 'latin1');
  const p = Buffer.allocUnsafe(8 + d.length);
  p.writeUInt32BE(lastStream, 0);
  p.writeUInt32BE(code, 4);
  d.copy(p, 8);
  return frame(FRAME.GOAWAY, 0, 0, p);
}

/** The payload of a DATA or HEADERS frame without its padding (and HEADERS' priority block). */
export function unpadded(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  let start = 0;
  let end = payload.length;
  if (flags & FLAG.PADDED) {
    if (payload.length < 1) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'a padded frame without its pad length');
    const pad = payload[0];
    start = 1;
    end -= pad;
    if (end < start) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `padding of ${pad} bytes fills the whole frame`);
  }
  if (type === FRAME.HEADERS && flags & FLAG.PRIORITY) {
    if (end - start < 5) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'HEADERS too short for its priority block');
    if ((payload.readUInt32BE(start) & 0x7fffffff) === stream)
      throw new H2Error(ERR.PROTOCOL_ERROR, stream, 'a stream cannot depend on itself');
    start += 5;
  }
  return start === 0 && end === payload.length ? payload : payload.subarray(start, end);
}
