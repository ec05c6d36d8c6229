// isomorphic-git's fetch (1.44) fails with "Could not find HEAD" when the remote's
// HEAD is unborn — e.g. a repository that holds only the capsule branch, or whose
// default branch was deleted — even for a single-branch fetch that never needs HEAD.
// This shim rewrites the v1 ref advertisement of such a server to list HEAD at the
// branch being followed, which is all isomorphic-git uses it for (the reported
// default branch). Nothing else in the response changes.
import type { GitHttpRequest, GitHttpResponse } from './http-client.js';

type HttpPlugin = { request(req: GitHttpRequest): Promise<GitHttpResponse> };

function pktLines(buf: Buffer): (Buffer | null)[] | null {
  const out: (Buffer | null)[] = [];
  let i = 0;
  while (i < buf.length) {
    const len = Number.parseInt(buf.subarray(i, i + 4).toString('latin1'), 16);
    if (!Number.isFinite(len)) return null;
    if (len === 0) {
      out.push(null);
      i += 4;
      continue;
    }
    if (len < 4 || i + len > buf.length) return null;
    out.push(buf.subarray(i + 4, i + len));
    i += len;
  }
  return out;
}

function pkt(line: Buffer | null): Buffer {
  if (line === null) return Buffer.from('0000');
  return Buffer.concat([Buffer.from((line.length + 4).toString(16).padStart(4, '0')), line]);
}

export function rewriteAdvertisement(body: Buffer, branchRef: string): Buffer {
  const lines = pktLines(body);
  if (!lines) return body;
  // "# service=git-upload-pack\n", flush, then the refs.
  const first = lines.findIndex((l, i) => i > 0 && l !== null && lines[i - 1] === null);
  if (first < 0) return body;
  const firstLine = lines[first]!;
  const nul = firstLine.indexOf(0);
  if (nul < 0) return body;
  const [oid, name] = firstLine.subarray(0, nul).toString('latin1').split(' ');
  if (name === 'HEAD' || !oid || /^0+$/.test(oid)) return body;
  let target: string | null = null;
  for (let i = first; i < lines.length && lines[i] !== null; i++) {
    const text = lines[i]!.toString('latin1');
    const end = text.indexOf('\0') >= 0 ? text.indexOf('\0') : text.length;
    const [o, r] = text.slice(0, end).trim().split(' ');
    if (r === branchRef) target = o;
  }
  if (!target) return body;
  const caps = firstLine.subarray(nul); // "\0caps...\n"
  const head = Buffer.concat([Buffer.from(`${target} HEAD`), caps]);
  const demoted = Buffer.concat([firstLine.subarray(0, nul), Buffer.from('\n')]);
  const out = [...lines.slice(0, first), head, demoted, ...lines.slice(first + 1)];
  return Buffer.concat(out.map(pkt));
}

export function withHeadShim(inner: HttpPlugin, branchRef: string): HttpPlugin {
  return {
    async request(req) {
      const res = await inner.request(req);
      if (
        !/\/info\/refs\?service=git-upload-pack$/.test(req.url) ||
        res.statusCode !== 200 ||
        req.headers?.['Git-Protocol'] ||
        req.headers?.['git-protocol']
      )
        return res;
      const parts: Buffer[] = [];
      for await (const c of res.body) parts.push(Buffer.from(c));
      const body = rewriteAdvertisement(Buffer.concat(parts), branchRef);
      return {
        ...res,
        body: (async function* () {
          yield body;
        })(),
      };
    },
  };
}
