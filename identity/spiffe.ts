// SPIFFE ID validation per spiffe/spiffe standards/SPIFFE-ID.md:
// spiffe://<trust-domain>/<path>, lowercase trust domain of [a-z0-9.-_],
// path segments of [A-Za-z0-9.-_], no empty, "." or ".." segments, no trailing
// slash, no query/fragment/port/userinfo, at most 2048 bytes.

const MAX_BYTES = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Returns null when `id` is a valid SPIFFE ID, else what is wrong with it. */
export function validateSpiffeId(id: string): string | null {
  if (Buffer.byteLength(id, 'utf8') > MAX_BYTES) return `longer than ${MAX_BYTES} bytes`;
  if (!id.startsWith('spiffe://')) return 'scheme must be "spiffe://" (lowercase)';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const domain = slash === -1 ? rest : rest.slice(0, slash);
  if (domain.length === 0) return 'trust domain is empty';
  if (!TRUST_DOMAIN.test(domain)) {
    if (/[A-Z]/.test(domain)) return `trust domain "${domain}" must be lowercase`;
    return `trust domain "${domain}" may contain only a-z, 0-9, ".", "-" and "_" (no port, userinfo, query or fragment)`;
  }
  if (slash === -1) return null;
  const path = rest.slice(slash);
  if (path === '/') return 'path must not end with "/"';
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') return 'path contains an empty segment (or ends with "/")';
    if (segment === '.' || segment === '..') return `path segment "${segment}" is not allowed`;
    if (!SEGMENT.test(segment)) return `path segment "${segment}" may contain only A-Z, a-z, 0-9, ".", "-" and "_"`;
  }
  return null;
}

export function trustDomainOf(id: string): string {
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash === -1 ? rest : rest.slice(0, slash);
}
