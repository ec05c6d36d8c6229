// DNS wire format (RFC 1035), just what the front needs: read a query's
// question, read A/AAAA answers out of a response, build error responses.

export interface DnsQuestion {
  id: number;
  flags: number;
  /** Lowercase, no trailing dot. */
  name: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question (where a response's answers begin). */
  end: number;
  /** The labels as sent (case kept: resolvers may check a 0x20-randomised question). */
  labels: string[];
  /** The query's EDNS OPT record, when it had one: only these two facts are forwarded. */
  edns?: { udpSize: number; dnssecOk: boolean };
}

export const QTYPES: Record<number, string> = {
  1: 'A',
  2: 'NS',
  5: 'CNAME',
  6: 'SOA',
  12: 'PTR',
  15: 'MX',
  16: 'TXT',
  28: 'AAAA',
  33: 'SRV',
  64: 'SVCB',
  65: 'HTTPS',
  255: 'ANY',
};

export const qtypeName = (t: number) => QTYPES[t] ?? `TYPE${t}`;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

export class DnsFormatError extends Error {}

/** Reads a (possibly compressed) name at `off`; returns it and the offset after it in the original position. */
export function readName(buf: Buffer, off: number): { name: string; next: number; labels: string[] } {
  const labels: string[] = [];
  let next = -1;
  let jumps = 0;
  let total = 0;
  for (;;) {
    if (off >= buf.length) throw new DnsFormatError('name runs past the end of the message');
    const len = buf[off];
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer');
      if (++jumps > 32) throw new DnsFormatError('compression pointer loop');
      if (next < 0) next = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1];
      continue;
    }
    if (len & 0xc0) throw new DnsFormatError('reserved label type');
    if (len === 0) {
      if (next < 0) next = off + 1;
      break;
    }
    if (off + 1 + len > buf.length) throw new DnsFormatError('label runs past the end of the message');
    total += len + 1;
    if (total > 255) throw new DnsFormatError('name longer than 255 bytes');
    const label = buf.toString('latin1', off + 1, off + 1 + len);
    // A dot inside a label would make the decided text name another name than the wire one.
    if (label.includes('.')) throw new DnsFormatError('label contains a dot');
    labels.push(label);
    off += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), next, labels };
}

export function parseQuery(buf: Buffer): DnsQuestion {
  if (buf.length < 12) throw new DnsFormatError('message shorter than a DNS header');
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  if (flags & 0x8000) throw new DnsFormatError('not a query (QR set)');
  if ((flags >> 11) & 0xf) throw new DnsFormatError(`opcode ${(flags >> 11) & 0xf} not supported`);
  const qd = buf.readUInt16BE(4);
  if (qd !== 1) throw new DnsFormatError(`expected exactly one question, got ${qd}`);
  if (buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0) throw new DnsFormatError('query carries answer or authority records');
  const { name, next, labels } = readName(buf, 12);
  if (next + 4 > buf.length) throw new DnsFormatError('question truncated');
  const q: DnsQuestion = { id, flags, name, qtype: buf.readUInt16BE(next), qclass: buf.readUInt16BE(next + 2), end: next + 4, labels };
  const ar = buf.readUInt16BE(10);
  if (ar > 1) throw new DnsFormatError(`${ar} additional records (only one EDNS OPT record is accepted)`);
  let off = q.end;
  if (ar === 1) {
    // OPT (RFC 6891): root owner name, type 41, class = UDP payload size, TTL = ext-rcode/version/flags, then options.
    if (off + 11 > buf.length || buf[off] !== 0 || buf.readUInt16BE(off + 1) !== 41)
      throw new DnsFormatError('additional record is not an EDNS OPT record');
    const rdlen = buf.readUInt16BE(off + 9);
    if (off + 11 + rdlen > buf.length) throw new DnsFormatError('OPT record truncated');
    if (buf[off + 6] !== 0) throw new DnsFormatError(`EDNS version ${buf[off + 6]}`);
    q.edns = { udpSize: buf.readUInt16BE(off + 3), dnssecOk: (buf[off + 7] & 0x80) !== 0 };
    off += 11 + rdlen;
  }
  if (off !== buf.length) throw new DnsFormatError('bytes after the query');
  return q;
}

/**
 * The query the resolver gets: what was decided and nothing else. A fresh header
 * (`id`; RD and CD kept), the question re-encoded from its labels, and, when the
 * client sent EDNS, an OPT record with its payload size (capped at 1232) and DO
 * bit but no options: EDNS options, other additional records and compression
 * tricks never leave.
 */
export function canonicalQuery(q: DnsQuestion, id: number): Buffer {
  const nameLen = q.labels.reduce((n, l) => n + 1 + l.length, 1);
  const out = Buffer.alloc(12 + nameLen + 4 + (q.edns ? 11 : 0));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(q.flags & 0x0110, 2); // RD (0x0100) and CD (0x0010)
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  let off = 12;
  for (const l of q.labels) {
    out[off++] = l.length;
    off += out.write(l, off, 'latin1');
  }
  out[off++] = 0;
  out.writeUInt16BE(q.qtype, off);
  out.writeUInt16BE(q.qclass, off + 2);
  off += 4;
  if (q.edns) {
    out[off] = 0;
    out.writeUInt16BE(41, off + 1);
    out.writeUInt16BE(Math.min(Math.max(q.edns.udpSize, 512), 1232), off + 3);
    out[off + 7] = q.edns.dnssecOk ? 0x80 : 0;
  }
  return out;
}

/** A response to `query` carrying only its question and `rcode`. */
export function errorResponse(query: Buffer, q: DnsQuestion, rcode: number): Buffer {
  const out = Buffer.alloc(q.end);
  query.copy(out, 0, 0, q.end);
  // QR=1, keep opcode and RD, RA=1, rcode.
  out.writeUInt16BE(0x8000 | (q.flags & 0x7900) | 0x0080 | rcode, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}

/** Addresses in a response's answer section (A and AAAA records, any owner: CNAME chains included). */
export function answerAddresses(buf: Buffer): string[] {
  if (buf.length < 12) return [];
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let off = 12;
  const out: string[] = [];
  try {
    for (let i = 0; i < qd; i++) off = readName(buf, off).next + 4;
    for (let i = 0; i < an; i++) {
      off = readName(buf, off).next;
      if (off + 10 > buf.length) break;
      const type = buf.readUInt16BE(off);
      const rdlen = buf.readUInt16BE(off + 8);
      const rd = off + 10;
      if (rd + rdlen > buf.length) break;
      if (type === 1 && rdlen === 4) out.push(`${buf[rd]}.${buf[rd + 1]}.${buf[rd + 2]}.${buf[rd + 3]}`);
      if (type === 28 && rdlen === 16) {
        const parts: string[] = [];
        for (let j = 0; j < 16; j += 2) parts.push(buf.readUInt16BE(rd + j).toString(16));
        out.push(compressV6(parts));
      }
      off = rd + rdlen;
    }
  } catch {
    // A malformed answer teaches nothing; the response is still relayed as the resolver sent it.
  }
  return out;
}

function compressV6(parts: string[]): string {
  // Longest run of zero groups → "::" (RFC 5952), matching how Node prints addresses.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

/** Builds a query (tests, health checks). */
export function buildQuery(id: number, name: string, qtype: number): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter(Boolean);
  const parts = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1]));
  return Buffer.concat(parts);
}
