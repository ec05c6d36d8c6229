// Bounds on what a git server's pack may expand to, checked before isomorphic-git sees
// it. isomorphic-git indexes a fetched pack by inflating every object in it on the
// event loop, with no limit: a 100 MiB blob of one repeated byte is ~100 KiB on the
// wire and costs gigabytes once indexed. Every pack object header states the object's
// size before its zlib stream, so an oversized object is refused from the header alone;
// the rest are inflated with an output cap equal to what the header promised (a header
// that lies fails at the cap, not at the end of the bomb), and a delta's result size
// (the second varint of the delta data) is held to the same cap.
import { inflateSync } from 'node:zlib';
import type { GitHttpRequest, GitHttpResponse } from './http-client.js';
import { SyncNetworkError } from './http-client.js';

export interface PackLimits {
  /** Largest inflated object (blob, tree, commit, or a delta's result). */
  maxObjectBytes: number;
  /** Sum of inflated bytes over the whole pack. */
  maxTotalBytes: number;
  /** Most objects in one pack (a depth-1 capsule fetch needs a handful). */
  maxObjects: number;
}

const OBJ_OFS_DELTA = 6;
const OBJ_REF_DELTA = 7;

function refuse(message: string): never {
  throw new SyncNetworkError('too_large', `git pack refused: ${message}`);
}

/** The side-band channel 1 bytes of an upload-pack response, demultiplexed as isomorphic-git does. */
export function packBytesOf(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 4 <= body.length) {
    const len = Number.parseInt(body.subarray(i, i + 4).toString('latin1'), 16);
    if (!Number.isInteger(len) || len < 0) throw new SyncNetworkError('network', 'git upload-pack response is not a pkt-line stream');
    if (len < 4) {
      i += 4; // flush / delimiter
      continue;
    }
    if (i + len > body.length) throw new SyncNetworkError('network', 'git upload-pack response ends inside a pkt-line');
    if (body[i + 4] === 1) parts.push(body.subarray(i + 5, i + len));
    i += len;
  }
  return Buffer.concat(parts);
}

/** Reads a size varint of a delta header (7 bits a byte, little-endian). */
function deltaVarint(buf: Buffer, pos: number): { value: number; pos: number } {
  let value = 0;
  let mul = 1;
  for (let n = 0; n < 8; n++) {
    if (pos >= buf.length) refuse('delta header is truncated');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (!(b & 0x80)) return { value, pos };
  }
  return refuse('delta size varint is too long');
}

/**
 * Checks a pack (the bytes after demultiplexing) against `limits`, inflating each object
 * at most up to its declared size. Throws SyncNetworkError 'too_large' naming the first
 * object over a limit; 'network' for a pack that does not parse.
 */
export function checkPack(pack: Buffer, limits: PackLimits): { objects: number; inflatedBytes: number } {
  if (pack.length === 0) return { objects: 0, inflatedBytes: 0 };
  if (pack.length < 12 || pack.toString('latin1', 0, 4) !== 'PACK') throw new SyncNetworkError('network', 'git pack has no PACK header');
  const version = pack.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new SyncNetworkError('network', `git pack version ${version} is not supported`);
  const count = pack.readUInt32BE(8);
  if (count > limits.maxObjects) refuse(`${count} objects, more than the ${limits.maxObjects} allowed`);
  let pos = 12;
  let total = 0;
  for (let n = 0; n < count; n++) {
    if (pos >= pack.length) throw new SyncNetworkError('network', `git pack is truncated at object ${n}`);
    let b = pack[pos++]!;
    const type = (b >> 4) & 7;
    let size = b & 15;
    let mul = 16;
    while (b & 0x80) {
      if (pos >= pack.length || mul > 2 ** 49) throw new SyncNetworkError('network', `git pack object ${n} has a bad header`);
      b = pack[pos++]!;
      size += (b & 0x7f) * mul;
      mul *= 128;
    }
    // The header states the size before anything is inflated.
    if (size > limits.maxObjectBytes) refuse(`object ${n} declares ${size} bytes, over the ${limits.maxObjectBytes}-byte cap`);
    if (total + size > limits.maxTotalBytes) refuse(`objects inflate to more than the ${limits.maxTotalBytes}-byte total cap`);
    if (type === OBJ_OFS_DELTA) {
      while (pos < pack.length && pack[pos++]! & 0x80) {
        /* skip the base offset varint */
      }
    } else if (type === OBJ_REF_DELTA) pos += 20;
    else if (type < 1 || type > 4) throw new SyncNetworkError('network', `git pack object ${n} has unknown type ${type}`);
    let out: { buffer: Buffer; engine: { bytesWritten: number } };
    try {
      out = inflateSync(pack.subarray(pos), { maxOutputLength: Math.max(1, size), info: true }) as unknown as typeof out;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') refuse(`object ${n} inflates past its declared ${size} bytes`);
      throw new SyncNetworkError('network', `git pack object ${n} does not inflate`);
    }
    if (out.buffer.length !== size) refuse(`object ${n} inflates to ${out.buffer.length} bytes, not the declared ${size}`);
    if (type === OBJ_OFS_DELTA || type === OBJ_REF_DELTA) {
      const base = deltaVarint(out.buffer, 0);
      const result = deltaVarint(out.buffer, base.pos);
      if (result.value > limits.maxObjectBytes)
        refuse(`delta object ${n} expands to ${result.value} bytes, over the ${limits.maxObjectBytes}-byte cap`);
      total += result.value;
    }
    total += size;
    if (total > limits.maxTotalBytes) refuse(`objects inflate to more than the ${limits.maxTotalBytes}-byte total cap`);
    pos += out.engine.bytesWritten;
  }
  return { objects: count, inflatedBytes: total };
}

type HttpPlugin = { request(req: GitHttpRequest): Promise<GitHttpResponse> };

/** Wraps an isomorphic-git http plugin: every upload-pack response is checked by checkPack before it is returned. */
export function withPackLimits(inner: HttpPlugin, limits: PackLimits): HttpPlugin {
  return {
    async request(req) {
      const res = await inner.request(req);
      if (!/\/git-upload-pack$/.test(new URL(req.url).pathname) || res.statusCode !== 200) return res;
      const parts: Buffer[] = [];
      for await (const c of res.body) parts.push(Buffer.from(c));
      const body = Buffer.concat(parts);
      checkPack(packBytesOf(body), limits);
      return {
        ...res,
        body: (async function* () {
          yield body;
        })(),
      };
    },
  };
}
