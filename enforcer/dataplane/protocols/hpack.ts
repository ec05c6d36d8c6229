// HPACK (RFC 7541) for the frame-level HTTP/2 relay: a decoder that keeps the peer's
// dynamic table across a connection's header blocks and refuses anything malformed or
// too large as it reads it, and an encoder that never indexes (so our re-emitted
// blocks depend on no table state the peer keeps) and never compresses.
// Names and values are latin1 strings: one char per field byte.
import { huffmanDecode, huffmanMaxDecodedLength } from './hpack-huffman.js';

export type HeaderField = [name: string, value: string];

export class HpackError extends Error {
  constructor(
    /** HPACK_TOO_LARGE: the header list exceeds the caller's bound; HPACK_DECODE: anything else malformed. */
    readonly code: 'HPACK_DECODE' | 'HPACK_TOO_LARGE',
    message: string,
  ) {
    super(message);
    this.name = 'HpackError';
  }
}

/** RFC 7541 Appendix A, indexes 1-61 (slot 0 unused). */
const STATIC_TABLE: ReadonlyArray<HeaderField> = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length - 1;

/** RFC 7541 §4.1: an entry's size counts 32 octets of overhead; RFC 9113 §6.5.2 counts a header list the same way. */
const ENTRY_OVERHEAD = 32;

/**
 * RFC 9113 §6.5.2: SETTINGS_HEADER_TABLE_SIZE starts at 4096, and the peer's encoder uses that size until it
 * signals another with a size update (§4.2 of RFC 7541): whatever we advertise, the table starts here.
 */
const INITIAL_TABLE_SIZE = 4096;

/** Integers above this are refused (RFC 7541 §5.1 leaves the limit to the implementation). */
const MAX_INT = 0x7fffffff;
/** 7 bits each after the prefix: 5 continuation bytes reach past 2^31, a sixth is never needed. */
const MAX_INT_CONTINUATIONS = 5;

function decodeError(message: string, at: number): HpackError {
  return new HpackError('HPACK_DECODE', `HPACK: ${message} at byte ${at}`);
}

function tooLarge(maxListBytes: number, at: number): HpackError {
  return new HpackError('HPACK_TOO_LARGE', `HPACK: header list larger than ${maxListBytes} bytes at byte ${at}`);
}

// Huffman strings decode here first, so a string is materialised only once its length is within the bound.
// One per module: decoding is synchronous, nothing else runs while a block is decoded.
const SCRATCH_BYTES = 16 * 1024;
const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

export class HpackDecoder {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertised: the peer may not size its table above it. */
  readonly #limit: number;
  /** The table's current maximum size: the protocol's initial 4096 until the peer's first dynamic table size update. */
  #capacity = INITIAL_TABLE_SIZE;
  /** Sum of the live entries' sizes. */
  #size = 0;
  // The dynamic table: entries oldest to newest at [#oldest, length); evicted slots ahead of #oldest are dropped in batches.
  #entries: HeaderField[] = [];
  #oldest = 0;
  /** Set while a block is decoded and left set when it throws: a table half-updated by a bad block is never used again. */
  #broken = false;
  #pos = 0;
  /** The bound of the block being decoded, for error messages. */
  #maxListBytes = 0;

  /**
   * maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we advertised (default 4096); a dynamic table size update above
   * it is a decode error. The table itself starts at the protocol's 4096 (the peer may not have our SETTINGS yet).
   */
  constructor(maxTableSize = 4096) {
    if (!Number.isSafeInteger(maxTableSize) || maxTableSize < 0 || maxTableSize > MAX_INT) {
      throw new RangeError(`HpackDecoder: maxTableSize must be an integer in 0..${MAX_INT}, got ${maxTableSize}`);
    }
    this.#limit = maxTableSize;
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION fragments joined). maxListBytes bounds the decoded list
   * as RFC 9113 §6.5.2 counts it (name + value + 32 per field): beyond it, HpackError HPACK_TOO_LARGE, thrown before
   * the offending string is materialised; anything malformed is HPACK_DECODE. After a throw the decoder refuses every
   * later block (its table may be half-updated): the connection ends with COMPRESSION_ERROR.
   */
  decode(block: Buffer, maxListBytes: number): HeaderField[] {
    if (!Number.isSafeInteger(maxListBytes) || maxListBytes < 0) {
      throw new RangeError(`HpackDecoder.decode: maxListBytes must be a non-negative integer, got ${maxListBytes}`);
    }
    if (this.#broken) throw new HpackError('HPACK_DECODE', 'HPACK: decoder unusable after an earlier decoding error');
    this.#broken = true;
    const fields: HeaderField[] = [];
    const end = block.length;
    let listBytes = 0;
    this.#pos = 0;
    this.#maxListBytes = maxListBytes;
    while (this.#pos < end) {
      const at = this.#pos;
      const first = block[at];
      if (first >= 0x80) {
        // Indexed header field (§6.1): the entry's strings already exist, so the bound is checked before the list grows.
        const index = this.#integer(block, 7);
        const [name, value] = this.#entry(index, at);
        listBytes += name.length + value.length + ENTRY_OVERHEAD;
        if (listBytes > maxListBytes) throw tooLarge(maxListBytes, at);
        // A new tuple: the table's own must not be reachable from what the caller gets.
        fields.push([name, value]);
        continue;
      }
      if (first >= 0x20 && first < 0x40) {
        // Dynamic table size update (§6.3): only before the block's first field (§4.2), never above what we advertised.
        if (fields.length > 0) throw decodeError('dynamic table size update after a header field', at);
        const size = this.#integer(block, 5);
        if (size > this.#limit) throw decodeError(`dynamic table size update to ${size}, above the advertised ${this.#limit}`, at);
        this.#capacity = size;
        this.#evictTo(size);
        continue;
      }
      // Literal header field (§6.2): with incremental indexing (01), without indexing (0000) or never indexed (0001).
      const indexing = first >= 0x40;
      const nameIndex = this.#integer(block, indexing ? 6 : 4);
      const name = nameIndex === 0 ? this.#string(block, maxListBytes - listBytes - ENTRY_OVERHEAD) : this.#entry(nameIndex, at)[0];
      const valueBudget = maxListBytes - listBytes - ENTRY_OVERHEAD - name.length;
      if (valueBudget < 0) throw tooLarge(maxListBytes, at);
      const value = this.#string(block, valueBudget);
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      fields.push([name, value]);
      if (indexing) this.#insert(name, value);
    }
    this.#broken = false;
    return fields;
  }

  /** An integer with an N-bit prefix (§5.1) starting at #pos, which is inside the block. */
  #integer(block: Buffer, prefixBits: number): number {
    const at = this.#pos;
    const mask = (1 << prefixBits) - 1;
    let value = block[this.#pos++] & mask;
    if (value < mask) return value;
    let scale = 1;
    for (let i = 0; i < MAX_INT_CONTINUATIONS; i++) {
      if (this.#pos >= block.length) throw decodeError('truncated integer', at);
      const b = block[this.#pos++];
      value += (b & 0x7f) * scale;
      if (value > MAX_INT) throw decodeError('integer above 2^31-1', at);
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw decodeError(`integer longer than ${MAX_INT_CONTINUATIONS} continuation bytes`, at);
  }

  /** A string literal (§5.2) at #pos; `budget` is how many bytes the decoded string may have before the list is too large. */
  #string(block: Buffer, budget: number): string {
    const at = this.#pos;
    if (at >= block.length) throw decodeError('missing string literal', at);
    const huffman = block[at] >= 0x80;
    const length = this.#integer(block, 7);
    const start = this.#pos;
    if (length > block.length - start) throw decodeError(`string of ${length} bytes beyond the block's end`, at);
    this.#pos = start + length;
    if (!huffman) {
      if (length > budget) throw tooLarge(this.#maxListBytes, at);
      return block.toString('latin1', start, start + length);
    }
    // A Huffman string decodes to at most 8/5 of its length: a bounded amount of work, done before the budget check
    // because the exact length is known only after decoding.
    const need = huffmanMaxDecodedLength(length);
    const out = need <= SCRATCH_BYTES ? scratch : Buffer.allocUnsafe(need);
    const n = huffmanDecode(block, start, start + length, out);
    if (n < 0) throw decodeError('invalid Huffman string (EOS inside, or padding not 0-7 one bits)', at);
    if (n > budget) throw tooLarge(this.#maxListBytes, at);
    return out.toString('latin1', 0, n);
  }

  /** The entry at a 1-based index into the static then dynamic table (§2.3.3): the table's own tuple, not to be handed out. */
  #entry(index: number, at: number): HeaderField {
    if (index === 0) throw decodeError('index 0', at);
    if (index <= STATIC_COUNT) return STATIC_TABLE[index];
    const fromNewest = index - STATIC_COUNT - 1;
    const count = this.#entries.length - this.#oldest;
    if (fromNewest >= count) throw decodeError(`index ${index} beyond the table (${STATIC_COUNT} static + ${count} dynamic entries)`, at);
    return this.#entries[this.#entries.length - 1 - fromNewest];
  }

  /** Adds an entry (§4.4): older entries are evicted to make room; an entry larger than the table empties it. */
  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.#capacity) {
      this.#evictTo(0);
      return;
    }
    this.#evictTo(this.#capacity - size);
    this.#entries.push([name, value]);
    this.#size += size;
  }

  #evictTo(maxSize: number): void {
    while (this.#size > maxSize) {
      const [name, value] = this.#entries[this.#oldest++];
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    // Drop the evicted slots once they are the larger part: amortised O(1) per entry, arrays stay bounded by the table.
    if (this.#oldest > 32 && this.#oldest * 2 > this.#entries.length) {
      this.#entries.splice(0, this.#oldest);
      this.#oldest = 0;
    }
  }
}

interface StaticName {
  /** The first static index with this name. */
  index: number;
  /** Values with their own static index, when the name has any. */
  exact: Map<string, number> | null;
}

const STATIC_BY_NAME = new Map<string, StaticName>();
for (let i = 1; i <= STATIC_COUNT; i++) {
  const [name, value] = STATIC_TABLE[i];
  let entry = STATIC_BY_NAME.get(name);
  if (entry === undefined) {
    entry = { index: i, exact: null };
    STATIC_BY_NAME.set(name, entry);
  }
  if (value !== '') {
    entry.exact ??= new Map();
    entry.exact.set(value, i);
  }
}

/** A char above 0xff has no field byte: refused rather than truncated by the latin1 write. */
const NOT_LATIN1 = /[^\x00-\xff]/;

/** Bytes beyond a field's name and value that encodeHpack may write: one flag byte, then an index or length integer (≤ 6 bytes) and a length integer (≤ 6). */
const FIELD_FRAMING_MAX = 13;

function writeInteger(buf: Buffer, pos: number, flags: number, prefixBits: number, value: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    buf[pos] = flags | value;
    return pos + 1;
  }
  buf[pos++] = flags | mask;
  let rest = value - mask;
  while (rest >= 0x80) {
    buf[pos++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buf[pos] = rest;
  return pos + 1;
}

/** Strings shorter than this are copied by a loop that also checks each char: cheaper than a regex test plus a native write call. */
const SHORT_STRING = 128;

/** Writes a raw string literal; -1 when a char has no field byte (the caller names the field). */
function writeString(buf: Buffer, pos: number, s: string): number {
  const at = writeInteger(buf, pos, 0x00, 7, s.length);
  const n = s.length;
  if (n < SHORT_STRING) {
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) return -1;
      buf[at + i] = c;
    }
    return at + n;
  }
  if (NOT_LATIN1.test(s)) return -1;
  return at + buf.write(s, at, 'latin1');
}

function notLatin1(name: string, what: string): RangeError {
  return new RangeError(`encodeHpack: ${what} ${JSON.stringify(name)} has a character above U+00FF`);
}

/**
 * One header block for `fields`, in order, using no dynamic table and no Huffman: an exact static
 * match is indexed, a static name is a literal with indexed name, anything else a literal with a
 * literal name; names in `sensitive` always take the never-indexed literal form (§6.2.3).
 */
export function encodeHpack(fields: ReadonlyArray<HeaderField>, sensitive?: ReadonlySet<string>): Buffer {
  let capacity = 0;
  for (const [name, value] of fields) capacity += name.length + value.length + FIELD_FRAMING_MAX;
  const buf = Buffer.allocUnsafe(capacity);
  let pos = 0;
  for (const [name, value] of fields) {
    const never = sensitive?.has(name) === true;
    const known = STATIC_BY_NAME.get(name);
    if (known !== undefined && !never && known.exact !== null) {
      const index = known.exact.get(value);
      if (index !== undefined) {
        pos = writeInteger(buf, pos, 0x80, 7, index);
        continue;
      }
    }
    const flags = never ? 0x10 : 0x00;
    if (known !== undefined) pos = writeInteger(buf, pos, flags, 4, known.index);
    else {
      buf[pos] = flags;
      pos = writeString(buf, pos + 1, name);
      if (pos < 0) throw notLatin1(name, 'header name');
    }
    pos = writeString(buf, pos, value);
    if (pos < 0) throw notLatin1(name, 'value of header');
  }
  return buf.subarray(0, pos);
}

/** Fields kept by an HpackFieldEncoder: bounded count and size (a connection's usual fields fit). */
const FIELD_CACHE_ENTRIES = 64;
const FIELD_CACHE_VALUE_CHARS = 256;

/**
 * encodeHpack for one connection, keeping the encoded bytes of the last value sent under each
 * name: a connection's requests (or responses) repeat most fields, whose bytes are then copied
 * rather than encoded again. The output is exactly encodeHpack's.
 */
export class HpackFieldEncoder {
  readonly #sensitive: ReadonlySet<string> | undefined;
  readonly #cache = new Map<string, { value: string; bytes: Buffer }>();

  constructor(sensitive?: ReadonlySet<string>) {
    this.#sensitive = sensitive;
  }

  encode(fields: ReadonlyArray<HeaderField>): Buffer {
    const parts: Buffer[] = [];
    let total = 0;
    for (const field of fields) {
      const [name, value] = field;
      let entry = this.#cache.get(name);
      if (entry === undefined || entry.value !== value) {
        const bytes = Buffer.from(encodeHpack([field], this.#sensitive));
        if (value.length <= FIELD_CACHE_VALUE_CHARS && name.length <= FIELD_CACHE_VALUE_CHARS) {
          if (entry === undefined && this.#cache.size >= FIELD_CACHE_ENTRIES) this.#cache.clear();
          this.#cache.set(name, (entry = { value, bytes }));
        } else {
          parts.push(bytes);
          total += bytes.length;
          continue;
        }
      }
      parts.push(entry.bytes);
      total += entry.bytes.length;
    }
    return Buffer.concat(parts, total);
  }
}
