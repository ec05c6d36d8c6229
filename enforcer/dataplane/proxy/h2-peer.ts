// One side of the HTTP/2 relay: the connection mechanics (preface, SETTINGS,
// PING, flow control in both directions, stream bookkeeping, header blocks
// through HPACK) for the agent's connection (we are the server) or the
// upstream's (we are the client). It hands the relay complete, decoded header
// lists and DATA per stream, and takes frames to send; it decides nothing.
// Every count the peer controls is bounded: frame size, header block bytes and
// CONTINUATION frames, decoded header list, concurrent and refused streams,
// control responses a peer leaves unread, and frames that do nothing.
import type net from 'node:net';
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ERR,
  FLAG,
  FRAME,
  FrameReader,
  frame,
  frameHead,
  goawayFrame,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  rstFrame,
  SETTING,
  settingsFrame,
  unpadded,
  windowUpdateFrame,
} from '../protocols/h2-frames.js';
import { HpackDecoder, HpackError, HpackFieldEncoder, type HeaderField } from '../protocols/hpack.js';

export interface PeerStream {
  readonly id: number;
  /** The peer may still send on it. */
  recvOpen: boolean;
  /** We may still send on it. */
  sendOpen: boolean;
  sendWindow: number;
  recvWindow: number;
  /** Bytes consumed and not yet returned to the peer as stream credit. */
  owed: number;
  /** DATA waiting for flow-control window, then an END_STREAM or a trailer block. */
  queue: Buffer[];
  queueEnd: boolean;
  queueTrailers: HeaderField[] | null;
  /** Header blocks received on it (the second is the trailers). */
  blocks: number;
  /** The relay's exchange this stream belongs to. */
  exchange: unknown;
  /** Reset with this code once our side has ended and was sent, if the peer is still sending (resetWhenSent). */
  resetAfterSend: number | null;
}

export interface PeerHandler {
  headers(s: PeerStream, fields: HeaderField[], endStream: boolean): void;
  data(s: PeerStream, data: Buffer, endStream: boolean): void;
  reset(s: PeerStream, code: number): void;
  /** `bytes` of DATA on `s` went to the socket (and the socket is not backed up): credit the other side. */
  written(s: PeerStream, bytes: number): void;
  goaway(lastStream: number, code: number): void;
  /** A stream ended and its slot is free (client role: queued opens may go; server role: the connection may be idle). */
  slotFree(): void;
  /** The connection ended; `fault` when the peer broke the protocol or a bound. */
  closed(fault: H2Error | null): void;
}

export interface PeerOptions {
  role: 'server' | 'client';
  /** Bound on a header block, compressed and decoded (RFC 9113 §6.5.2 size). */
  maxHeaderBytes: number;
  /** Streams the peer may open at once (server role). */
  maxConcurrentStreams: number;
  /** Our receive window for the whole connection. */
  connectionWindow: number;
  /**
   * The peer's first SETTINGS (after the client preface, server role) must arrive within this:
   * else the connection fails. Bounds an agent that opens a connection and says nothing, and an
   * upstream that never lets a stream open.
   */
  settingsTimeoutMs: number;
}

/** A peer leaving this much of our writes unread is not reading: its control frames are not answered further. */
const CONTROL_BACKLOG = 1 << 20;
/** Above this much unread, DATA credit is held back until the socket drains. */
const DATA_BACKLOG = 256 * 1024;
const MAX_CONTINUATIONS = 64;
const MAX_REFUSED_STREAMS = 100;
/** Frames that carry nothing (empty DATA without END_STREAM, frames on closed streams, unknown types, PRIORITY). */
const MAX_IDLE_FRAMES = 2000;
const STREAM_CREDIT_AT = 16_384;

export class H2Peer {
  readonly #socket: net.Socket;
  readonly #opts: PeerOptions;
  readonly #handler: PeerHandler;
  readonly #reader = new FrameReader(DEFAULT_MAX_FRAME);
  readonly #decoder = new HpackDecoder(4096);
  readonly #encoder = new HpackFieldEncoder(SENSITIVE);
  readonly #streams = new Map<number, PeerStream>();
  #out: Buffer[] = [];
  #flushing = false;
  #preface: Buffer | null;
  #settled = false;
  #block: { id: number; end: boolean; parts: Buffer[]; bytes: number; frames: number } | null = null;
  #lastPeerStream = 0;
  #nextOwn = 1;
  #ownOpen = 0;
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;
  #peerMaxStreams = Number.POSITIVE_INFINITY;
  #connSend = DEFAULT_WINDOW;
  #connRecv: number;
  #connOwed = 0;
  #blocked = new Set<PeerStream>();
  #heldWritten: Array<[PeerStream, number]> = [];
  #refused = 0;
  #idleFrames = 0;
  #goawaySent = false;
  #closed = false;
  #settingsTimer: NodeJS.Timeout | null = null;

  constructor(socket: net.Socket, opts: PeerOptions, handler: PeerHandler) {
    this.#socket = socket;
    this.#opts = opts;
    this.#handler = handler;
    this.#connRecv = opts.connectionWindow;
    this.#preface = opts.role === 'server' ? Buffer.alloc(0) : null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Streams open on this connection. */
  get size(): number {
    return this.#streams.size;
  }

  /** The streams open now (a copy: the caller may reset them as it goes). */
  openStreams(): PeerStream[] {
    return [...this.#streams.values()];
  }

  /** Writes our preface and settings, and starts reading. */
  start(): void {
    const settings: Array<[number, number]> = [
      [SETTING.ENABLE_PUSH, 0],
      [SETTING.MAX_HEADER_LIST_SIZE, this.#opts.maxHeaderBytes],
    ];
    if (this.#opts.role === 'server') settings.push([SETTING.MAX_CONCURRENT_STREAMS, this.#opts.maxConcurrentStreams]);
    if (this.#opts.role === 'client') this.#enqueue(PREFACE);
    this.#enqueue(settingsFrame(settings));
    if (this.#connRecv > DEFAULT_WINDOW) this.#enqueue(windowUpdateFrame(0, this.#connRecv - DEFAULT_WINDOW));
    this.#socket.on('data', (chunk: Buffer) => this.#read(chunk));
    this.#socket.on('drain', () => this.#drained());
    this.#socket.on('end', () => this.close(null));
    this.#socket.on('close', () => this.close(null));
    const ms = this.#opts.settingsTimeoutMs;
    this.#settingsTimer = setTimeout(() => {
      this.#settingsTimer = null;
      const what = this.#opts.role === 'server' ? 'the client preface and SETTINGS' : 'the server SETTINGS';
      this.close(new H2Error(ERR.PROTOCOL_ERROR, 0, `${what} not received within ${ms} ms`));
    }, ms);
    this.#settingsTimer.unref();
    // A socket handed over paused (the protocol detector reads the first bytes that way) flows from here.
    this.#socket.resume();
  }

  /**
   * Opens a stream (client role); null when the peer's concurrent-stream limit is reached, or its
   * first SETTINGS has not arrived: until then its limit is unknown, and streams opened beyond it
   * would be refused (slotFree tells when to try again).
   */
  open(fields: HeaderField[], endStream: boolean, exchange: unknown): PeerStream | null {
    if (this.#closed || !this.#settled || this.#ownOpen >= this.#peerMaxStreams || this.#nextOwn > MAX_WINDOW) return null;
    const s = this.#newStream(this.#nextOwn, exchange);
    this.#nextOwn += 2;
    this.#ownOpen++;
    this.#streams.set(s.id, s);
    this.sendHeaders(s, fields, endStream);
    return s;
  }

  sendHeaders(s: PeerStream, fields: HeaderField[], endStream: boolean): void {
    if (this.#closed || !s.sendOpen) return;
    const block = this.#encoder.encode(fields);
    const max = this.#peerMaxFrame;
    const flags = endStream ? FLAG.END_STREAM : 0;
    if (block.length <= max) {
      // Header and block enqueued apart: the flush joins them, so the block is copied once.
      this.#enqueue(frameHead(FRAME.HEADERS, flags | FLAG.END_HEADERS, s.id, block.length));
      this.#enqueue(block);
    } else {
      this.#enqueue(frame(FRAME.HEADERS, flags, s.id, block.subarray(0, max)));
      for (let at = max; at < block.length; at += max) {
        const last = at + max >= block.length;
        this.#enqueue(frame(FRAME.CONTINUATION, last ? FLAG.END_HEADERS : 0, s.id, block.subarray(at, at + max)));
      }
    }
    if (endStream) this.#endSend(s);
  }

  /**
   * DATA on `s`, sent as far as flow control allows now, the rest queued; `endStream` after the last byte.
   * False when the stream takes no more (reset or ended): the bytes are dropped and the caller credits them.
   */
  sendData(s: PeerStream, data: Buffer, endStream: boolean): boolean {
    if (this.#closed || !s.sendOpen || !this.#streams.has(s.id)) return false;
    if (s.queue.length || s.queueEnd) {
      if (data.length) s.queue.push(data);
      s.queueEnd ||= endStream;
      return true;
    }
    const sent = this.#push(s, data, endStream);
    if (sent < data.length) {
      s.queue.push(sent > 0 ? data.subarray(sent) : data);
      s.queueEnd = endStream;
      this.#blocked.add(s);
    }
    return true;
  }

  /** Trailers on `s` after whatever DATA is queued. */
  sendTrailers(s: PeerStream, fields: HeaderField[]): void {
    if (this.#closed || !s.sendOpen) return;
    if (s.queue.length) {
      s.queueTrailers = fields;
      s.queueEnd = true;
      return;
    }
    this.sendHeaders(s, fields, true);
  }

  reset(s: PeerStream, code: number): void {
    if (this.#closed || !this.#streams.has(s.id)) return;
    this.#enqueue(rstFrame(s.id, code));
    this.#forget(s);
  }

  /**
   * Resets `s` with `code` once what we send on it has all gone out (at once if it already has),
   * when the peer is still sending then: a complete response, then "the rest of the request is
   * not wanted" (NO_ERROR, RFC 9113 §8.1), never before the response's last byte.
   */
  resetWhenSent(s: PeerStream, code: number): void {
    if (this.#closed || !this.#streams.has(s.id)) return;
    if (s.sendOpen) s.resetAfterSend = code;
    else this.reset(s, code);
  }

  /** Returns `bytes` of receive window on `s` (and the connection) once the relay has passed them on. */
  credit(s: PeerStream | null, bytes: number): void {
    if (this.#closed || bytes <= 0) return;
    this.#connOwed += bytes;
    if (this.#connOwed >= this.#opts.connectionWindow / 4) {
      this.#enqueue(windowUpdateFrame(0, this.#connOwed));
      this.#connRecv += this.#connOwed;
      this.#connOwed = 0;
    }
    if (s?.recvOpen && this.#streams.has(s.id)) {
      s.owed += bytes;
      if (s.owed >= STREAM_CREDIT_AT) {
        this.#enqueue(windowUpdateFrame(s.id, s.owed));
        s.recvWindow += s.owed;
        s.owed = 0;
      }
    }
  }

  /** No new streams from the peer; those open go on. */
  goaway(code: number, debug = ''): void {
    if (this.#closed || this.#goawaySent) return;
    this.#goawaySent = true;
    this.#enqueue(goawayFrame(this.#lastPeerStream, code, debug));
  }

  /** Ends the connection: a fault is told to the peer in a GOAWAY first. */
  close(fault: H2Error | null): void {
    if (this.#closed) return;
    if (this.#settingsTimer) clearTimeout(this.#settingsTimer);
    if (fault) {
      this.#goawaySent = false;
      this.goaway(fault.h2code, fault.message);
    }
    this.#flush();
    this.#closed = true;
    this.#streams.clear();
    this.#blocked.clear();
    // Ended, not destroyed: a destroy drops what the socket holds unsent (the tail of a last
    // response, a GOAWAY). A peer that already ended or closed its side gets the same.
    this.#socket.end();
    // A peer that stops reading is not waited for.
    if (!this.#socket.destroyed) setTimeout(() => this.#socket.destroy(), 1000).unref();
    this.#handler.closed(fault);
  }

  #newStream(id: number, exchange: unknown): PeerStream {
    return {
      id,
      recvOpen: true,
      sendOpen: true,
      sendWindow: this.#peerInitialWindow,
      recvWindow: DEFAULT_WINDOW,
      owed: 0,
      queue: [],
      queueEnd: false,
      queueTrailers: null,
      blocks: 0,
      exchange,
      resetAfterSend: null,
    };
  }

  #enqueue(b: Buffer): void {
    this.#out.push(b);
    if (!this.#flushing) {
      this.#flushing = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushing = false;
    if (this.#closed || this.#out.length === 0) return;
    const out = this.#out.length === 1 ? this.#out[0] : Buffer.concat(this.#out);
    this.#out = [];
    if (!this.#socket.destroyed) this.#socket.write(out);
  }

  /** Sends what the windows allow of `data` (with END_STREAM after its last byte when `endStream`); returns the bytes sent. */
  #push(s: PeerStream, data: Buffer, endStream: boolean): number {
    let at = 0;
    const max = this.#peerMaxFrame;
    while (at < data.length) {
      const room = Math.min(s.sendWindow, this.#connSend, max, data.length - at);
      if (room <= 0) break;
      const last = at + room === data.length;
      this.#enqueue(frameHead(FRAME.DATA, last && endStream ? FLAG.END_STREAM : 0, s.id, room));
      this.#enqueue(data.subarray(at, at + room));
      s.sendWindow -= room;
      this.#connSend -= room;
      at += room;
    }
    if (at > 0) this.#wrote(s, at);
    if (at < data.length) return at;
    if (endStream) {
      if (data.length === 0) this.#enqueue(frame(FRAME.DATA, FLAG.END_STREAM, s.id));
      this.#endSend(s);
    }
    return at;
  }

  #wrote(s: PeerStream, bytes: number): void {
    if (this.#socket.writableLength > DATA_BACKLOG || this.#heldWritten.length) this.#heldWritten.push([s, bytes]);
    else this.#handler.written(s, bytes);
  }

  #drained(): void {
    const held = this.#heldWritten;
    this.#heldWritten = [];
    for (const [s, n] of held) this.#handler.written(s, n);
  }

  /** Sends queued DATA of window-blocked streams after a WINDOW_UPDATE or SETTINGS. */
  #unblock(only: PeerStream | null): void {
    for (const s of only ? [only] : [...this.#blocked]) {
      if (!this.#blocked.has(s)) continue;
      while (s.queue.length) {
        const head = s.queue[0];
        const endNow = s.queue.length === 1 && s.queueEnd && !s.queueTrailers;
        const sent = this.#push(s, head, endNow);
        if (sent < head.length) {
          s.queue[0] = head.subarray(sent);
          break;
        }
        s.queue.shift();
      }
      if (s.queue.length) continue;
      this.#blocked.delete(s);
      if (s.queueTrailers) this.sendHeaders(s, s.queueTrailers, true);
      else if (s.queueEnd && s.sendOpen) this.#push(s, Buffer.alloc(0), true);
    }
  }

  #endSend(s: PeerStream): void {
    s.sendOpen = false;
    if (!s.recvOpen) this.#forget(s);
    else if (s.resetAfterSend !== null) this.reset(s, s.resetAfterSend);
  }

  #endRecv(s: PeerStream): void {
    s.recvOpen = false;
    if (!s.sendOpen) this.#forget(s);
  }

  #forget(s: PeerStream): void {
    if (!this.#streams.delete(s.id)) return;
    s.recvOpen = false;
    s.sendOpen = false;
    this.#blocked.delete(s);
    // Queued DATA that will never be sent is released all the same: the other side's window must not leak.
    let queued = 0;
    for (const b of s.queue) queued += b.length;
    s.queue = [];
    if (queued) this.#handler.written(s, queued);
    if (this.#opts.role === 'client') this.#ownOpen--;
    this.#handler.slotFree();
  }

  #read(chunk: Buffer): void {
    if (this.#closed) return;
    try {
      if (this.#preface) {
        const got = Buffer.concat([this.#preface, chunk]);
        if (got.length < PREFACE.length) {
          if (!PREFACE.subarray(0, got.length).equals(got)) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'not the HTTP/2 client preface');
          this.#preface = got;
          return;
        }
        if (!got.subarray(0, PREFACE.length).equals(PREFACE)) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'not the HTTP/2 client preface');
        this.#preface = null;
        chunk = got.subarray(PREFACE.length);
      }
      this.#reader.feed(chunk, this.#onFrame);
    } catch (err) {
      if (err instanceof H2Error && err.stream === 0) return this.close(err);
      if (err instanceof HpackError) return this.close(new H2Error(ERR.COMPRESSION_ERROR, 0, `header block: ${err.message}`));
      throw err;
    }
  }

  readonly #onFrame = (type: number, flags: number, id: number, payload: Buffer): boolean => {
    if (this.#closed) return false;
    if (!this.#settled) {
      if (type !== FRAME.SETTINGS || flags & FLAG.ACK) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'the first frame is not SETTINGS');
      this.#settled = true;
      if (this.#settingsTimer) clearTimeout(this.#settingsTimer);
      this.#settingsTimer = null;
    }
    if (this.#block && type !== FRAME.CONTINUATION) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'a header block interrupted by another frame');
    try {
      this.#frame(type, flags, id, payload);
    } catch (err) {
      if (!(err instanceof H2Error) || err.stream === 0) throw err;
      // A stream error: that stream is reset, the connection goes on.
      const s = this.#streams.get(err.stream);
      this.#enqueue(rstFrame(err.stream, err.h2code));
      if (s) {
        this.#forget(s);
        this.#handler.reset(s, err.h2code);
      }
    }
    return !this.#closed;
  };

  #frame(type: number, flags: number, id: number, payload: Buffer): void {
    switch (type) {
      case FRAME.DATA:
        return this.#onData(flags, id, payload);
      case FRAME.HEADERS: {
        if (id === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'HEADERS on stream 0');
        const fragment = unpadded(type, flags, id, payload);
        this.#block = { id, end: (flags & FLAG.END_STREAM) !== 0, parts: [fragment], bytes: fragment.length, frames: 0 };
        this.#checkBlock();
        if (flags & FLAG.END_HEADERS) this.#endBlock();
        return;
      }
      case FRAME.CONTINUATION: {
        const b = this.#block;
        if (!b || b.id !== id) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'CONTINUATION without its HEADERS');
        b.parts.push(payload);
        b.bytes += payload.length;
        b.frames++;
        this.#checkBlock();
        if (flags & FLAG.END_HEADERS) this.#endBlock();
        return;
      }
      case FRAME.PRIORITY:
        if (id === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'PRIORITY on stream 0');
        if (payload.length !== 5) throw new H2Error(ERR.FRAME_SIZE_ERROR, id, 'PRIORITY of the wrong size');
        return this.#idle('PRIORITY frames');
      case FRAME.RST_STREAM: {
        if (id === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'RST_STREAM of the wrong size');
        if (this.#isIdle(id)) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `RST_STREAM on idle stream ${id}`);
        const s = this.#streams.get(id);
        if (!s) return this.#idle('frames on closed streams');
        this.#forget(s);
        this.#handler.reset(s, payload.readUInt32BE(0));
        return;
      }
      case FRAME.SETTINGS:
        return this.#onSettings(flags, id, payload);
      case FRAME.PUSH_PROMISE:
        throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'PUSH_PROMISE (push is disabled)');
      case FRAME.PING:
        if (id !== 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'PING on a stream');
        if (payload.length !== 8) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'PING of the wrong size');
        if (flags & FLAG.ACK) return this.#idle('PING acknowledgements');
        this.#control(frame(FRAME.PING, FLAG.ACK, 0, payload));
        return;
      case FRAME.GOAWAY: {
        if (id !== 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'GOAWAY on a stream');
        if (payload.length < 8) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'GOAWAY too short');
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        this.#handler.goaway(last, payload.readUInt32BE(4));
        this.#refuseAbove(last);
        return;
      }
      case FRAME.WINDOW_UPDATE:
        return this.#onWindowUpdate(id, payload);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1), and counted.
        return this.#idle('frames of unknown types');
    }
  }

  /**
   * Streams we opened above a GOAWAY's last stream were not processed and never will be
   * (RFC 9113 §6.8): each is ended as refused, so it is safe to retry, instead of waiting forever.
   */
  #refuseAbove(last: number): void {
    if (this.#opts.role !== 'client') return;
    for (const s of [...this.#streams.values()]) {
      if (this.#closed) return;
      if (s.id <= last || !this.#streams.has(s.id)) continue;
      this.#forget(s);
      this.#handler.reset(s, ERR.REFUSED_STREAM);
    }
  }

  #isIdle(id: number): boolean {
    const peerOpens = this.#opts.role === 'server' ? (id & 1) === 1 : (id & 1) === 0;
    return peerOpens ? id > this.#lastPeerStream : id >= this.#nextOwn;
  }

  #idle(what: string): void {
    if (++this.#idleFrames > MAX_IDLE_FRAMES)
      throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, `more than ${MAX_IDLE_FRAMES} frames that carry nothing (${what})`);
  }

  /** A response to a control frame, unless the peer has left too much unread. */
  #control(f: Buffer): void {
    if (this.#socket.writableLength > CONTROL_BACKLOG)
      throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, 'the peer does not read the answers to its control frames');
    this.#enqueue(f);
  }

  #checkBlock(): void {
    const b = this.#block!;
    if (b.bytes > this.#opts.maxHeaderBytes)
      throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, `a header block over ${this.#opts.maxHeaderBytes} bytes`);
    if (b.frames > MAX_CONTINUATIONS) throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, `more than ${MAX_CONTINUATIONS} CONTINUATION frames`);
  }

  #endBlock(): void {
    const b = this.#block!;
    this.#block = null;
    const block = b.parts.length === 1 ? b.parts[0] : Buffer.concat(b.parts);
    let fields: HeaderField[];
    try {
      // Decoded before anything else: the compression state is the connection's, whatever becomes of the stream.
      fields = this.#decoder.decode(block, this.#opts.maxHeaderBytes);
    } catch (err) {
      if (err instanceof HpackError && err.code === 'HPACK_TOO_LARGE')
        throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, `a header list over ${this.#opts.maxHeaderBytes} bytes`);
      throw err;
    }
    const id = b.id;
    const existing = this.#streams.get(id);
    if (existing) {
      if (!existing.recvOpen) throw new H2Error(ERR.STREAM_CLOSED, id, 'HEADERS on a half-closed stream');
      existing.blocks++;
      if (b.end) this.#endRecv(existing);
      this.#handler.headers(existing, fields, b.end);
      return;
    }
    if (this.#opts.role === 'client') {
      if (this.#isIdle(id) || (id & 1) === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `HEADERS on stream ${id} we did not open`);
      return this.#idle('frames on closed streams');
    }
    if ((id & 1) === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `a client stream with an even id (${id})`);
    if (id <= this.#lastPeerStream)
      throw new H2Error(ERR.PROTOCOL_ERROR, 0, `HEADERS on stream ${id}, not above the last opened (${this.#lastPeerStream})`);
    this.#lastPeerStream = id;
    if (this.#goawaySent) return;
    if (this.#streams.size >= this.#opts.maxConcurrentStreams) {
      if (++this.#refused > MAX_REFUSED_STREAMS)
        throw new H2Error(ERR.ENHANCE_YOUR_CALM, 0, `more than ${MAX_REFUSED_STREAMS} streams beyond the concurrency limit`);
      this.#enqueue(rstFrame(id, ERR.REFUSED_STREAM));
      return;
    }
    const s = this.#newStream(id, null);
    s.blocks = 1;
    this.#streams.set(id, s);
    if (b.end) s.recvOpen = false;
    this.#handler.headers(s, fields, b.end);
  }

  #onData(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'DATA on stream 0');
    const len = payload.length;
    if (len > this.#connRecv) throw new H2Error(ERR.FLOW_CONTROL_ERROR, 0, 'DATA beyond the connection window');
    this.#connRecv -= len;
    const s = this.#streams.get(id);
    if (!s) {
      if (this.#isIdle(id)) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `DATA on idle stream ${id}`);
      this.credit(null, len);
      return this.#idle('frames on closed streams');
    }
    if (!s.recvOpen) {
      this.credit(null, len);
      throw new H2Error(ERR.STREAM_CLOSED, id, 'DATA after END_STREAM');
    }
    if (len > s.recvWindow) throw new H2Error(ERR.FLOW_CONTROL_ERROR, id, 'DATA beyond the stream window');
    s.recvWindow -= len;
    const data = unpadded(FRAME.DATA, flags, id, payload);
    if (data.length < len) this.credit(s, len - data.length);
    const end = (flags & FLAG.END_STREAM) !== 0;
    if (data.length === 0 && !end) this.#idle('empty DATA frames');
    if (end) this.#endRecv(s);
    this.#handler.data(s, data, end);
  }

  #onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'SETTINGS on a stream');
    if (flags & FLAG.ACK) {
      if (payload.length) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'a SETTINGS acknowledgement with a payload');
      return;
    }
    if (payload.length % 6) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'SETTINGS of a length not a multiple of 6');
    let unblock = false;
    for (let at = 0; at < payload.length; at += 6) {
      const key = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (key === SETTING.ENABLE_PUSH && value > 1) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'ENABLE_PUSH not 0 or 1');
      else if (key === SETTING.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new H2Error(ERR.FLOW_CONTROL_ERROR, 0, 'INITIAL_WINDOW_SIZE above 2^31-1');
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const s of this.#streams.values()) {
          s.sendWindow += delta;
          if (s.sendWindow > MAX_WINDOW) throw new H2Error(ERR.FLOW_CONTROL_ERROR, 0, 'a stream window beyond 2^31-1');
        }
        unblock = delta > 0;
      } else if (key === SETTING.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME || value > 0xffffff) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'MAX_FRAME_SIZE out of range');
        this.#peerMaxFrame = value;
      } else if (key === SETTING.MAX_CONCURRENT_STREAMS) this.#peerMaxStreams = value;
    }
    this.#control(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    if (unblock) this.#unblock(null);
    // The peer's stream limit is known (or changed): streams waiting to open may go.
    if (this.#opts.role === 'client') this.#handler.slotFree();
  }

  #onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2Error(ERR.FRAME_SIZE_ERROR, 0, 'WINDOW_UPDATE of the wrong size');
    const inc = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) throw new H2Error(ERR.PROTOCOL_ERROR, 0, 'WINDOW_UPDATE of 0');
      this.#connSend += inc;
      if (this.#connSend > MAX_WINDOW) throw new H2Error(ERR.FLOW_CONTROL_ERROR, 0, 'the connection window beyond 2^31-1');
      return this.#unblock(null);
    }
    const s = this.#streams.get(id);
    if (!s) {
      if (this.#isIdle(id)) throw new H2Error(ERR.PROTOCOL_ERROR, 0, `WINDOW_UPDATE on idle stream ${id}`);
      return this.#idle('frames on closed streams');
    }
    if (inc === 0) throw new H2Error(ERR.PROTOCOL_ERROR, id, 'WINDOW_UPDATE of 0');
    s.sendWindow += inc;
    if (s.sendWindow > MAX_WINDOW) throw new H2Error(ERR.FLOW_CONTROL_ERROR, id, 'a stream window beyond 2^31-1');
    this.#unblock(s);
  }
}

/** Never entered in any compression table (they are not, here, but say so to the next hop too). */
const SENSITIVE = new Set(['authorization', 'cookie', 'set-cookie', 'proxy-authorization']);
