// Which 32-byte strings are acceptable Ed25519 public keys. tweetnacl verifies against
// any encoding, and a small-order "key" (e.g. the identity point 01 00…00) accepts a
// fixed forged signature on every message: one such entry in a trust file meets a
// threshold on its own. A key must decode canonically to a curve point that lies in
// the prime-order subgroup ([L]·A = identity), which rules out the 8 small-order
// points and every point with a small-order component. BigInt arithmetic: run once
// per key when a trust file is parsed, never per signature.

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a: bigint) => {
  const r = a % P;
  return r >= 0n ? r : r + P;
};
function pow(base: bigint, exp: bigint): bigint {
  let r = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = mod(r * b);
    b = mod(b * b);
    e >>= 1n;
  }
  return r;
}
const inv = (a: bigint) => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const D2 = mod(2n * D);
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

type Point = { x: bigint; y: bigint; z: bigint; t: bigint };

/** Decodes a compressed point (RFC 8032 5.1.3); null when it is not a canonical encoding of a curve point. */
export function decodePoint(bytes: Uint8Array): Point | null {
  if (bytes.length !== 32) return null;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i]! & 0x7f : bytes[i]!);
  const sign = (bytes[31]! >> 7) & 1;
  if (y >= P) return null;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 !== u) {
    if (vx2 !== mod(-u)) return null;
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1) return null;
  if (Number(x & 1n) !== sign) x = P - x;
  return { x, y, z: 1n, t: mod(x * y) };
}

function add(p: Point, q: Point): Point {
  const a = mod((p.y - p.x) * (q.y - q.x));
  const b = mod((p.y + p.x) * (q.y + q.x));
  const c = mod(p.t * D2 * q.t);
  const d = mod(2n * p.z * q.z);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { x: mod(e * f), y: mod(g * h), z: mod(f * g), t: mod(e * h) };
}

function double(p: Point): Point {
  const a = mod(p.x * p.x);
  const b = mod(p.y * p.y);
  const c = mod(2n * p.z * p.z);
  const d = mod(-a);
  const e = mod((p.x + p.y) * (p.x + p.y) - a - b);
  const g = d + b;
  const f = g - c;
  const h = d - b;
  return { x: mod(e * f), y: mod(g * h), z: mod(f * g), t: mod(e * h) };
}

function multiply(p: Point, n: bigint): Point {
  let r: Point = { x: 0n, y: 1n, z: 1n, t: 0n };
  for (let i = BigInt(n.toString(2).length - 1); i >= 0n; i--) {
    r = double(r);
    if ((n >> i) & 1n) r = add(r, p);
  }
  return r;
}

const isIdentity = (p: Point) => p.x === 0n && p.y === p.z;

/** Why `bytes` is not a usable Ed25519 public key, or null when it is. */
export function publicKeyProblem(bytes: Uint8Array): string | null {
  const point = decodePoint(bytes);
  if (!point) return 'is not a canonical encoding of an Ed25519 curve point';
  if (isIdentity(double(double(double(point))))) return 'is a small-order point (it would accept forged signatures)';
  if (!isIdentity(multiply(point, L))) return 'has a small-order component (not in the prime-order subgroup)';
  return null;
}
