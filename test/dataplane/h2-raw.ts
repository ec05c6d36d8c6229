// Raw HTTP/2 frames for attack tests: what a hostile client can put on the wire
// that Node's client API refuses to send (extended CONNECT without the server's
// SETTINGS_ENABLE_CONNECT_PROTOCOL, DATA on a CONNECT stream). HPACK here is
// literal fields without indexing, no Huffman: valid for any decoder.

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One frame: 9-byte header (length, type, flags, stream id) then the payload. */
export function h2Frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackLength(n: number): Buffer {
  if (n < 127) return Buffer.from([n]);
  const out = [127];
  n -= 127;
  while (n >= 128) {
    out.push((n & 0x7f) | 0x80);
    n >>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A header block of literal fields without indexing (new names), in order. */
export function hpackLiteral(fields: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of fields) {
    parts.push(Buffer.from([0x00]), hpackLength(n.length), Buffer.from(n, 'latin1'), hpackLength(v.length), Buffer.from(v, 'latin1'));
  }
  return Buffer.concat(parts);
}

/** Splits received bytes into frames (a trailing partial frame is dropped). */
export function h2Frames(buf: Buffer): Array<{ type: number; flags: number; stream: number; payload: Buffer }> {
  const out: Array<{ type: number; flags: number; stream: number; payload: Buffer }> = [];
  let i = 0;
  while (i + 9 <= buf.length) {
    const len = buf.readUIntBE(i, 3);
    if (i + 9 + len > buf.length) break;
    out.push({
      type: buf[i + 3],
      flags: buf[i + 4],
      stream: buf.readUInt32BE(i + 5) & 0x7fffffff,
      payload: buf.subarray(i + 9, i + 9 + len),
    });
    i += 9 + len;
  }
  return out;
}
