// Policy JSON with its Long literals exact. cedar-wasm's JSON form (policyToJson)
// carries a Long literal as a JS number, so 9007199254740993 arrives as
// 9007199254740992 — and a proof over the rounded literal is a proof of another
// policy. Literals beyond 2^53 are swapped in the text for unique string markers
// before conversion; each marker's place in the JSON says where its exact value
// (a BigInt) goes. `-<digits>` becomes a `neg` of the marker and is folded back,
// so -2^63 (whose digits alone are out of range) stays a literal.
import { randomBytes } from 'node:crypto';
import type { NamedPolicy } from '../../cedar/policy-set.js';
import * as cedar from '../../cedar/wasm-loader.js';
import { UnsupportedError } from './smt.js';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** `p` with every Long literal beyond ±(2^53 − 1) in its JSON a BigInt; `p` itself when it has none. */
export function exactPolicy(p: NamedPolicy): NamedPolicy {
  const text = p.text;
  const bigs = new Map<string, bigint>();
  const nonce = randomBytes(8).toString('hex');
  let out = '';
  let i = 0;
  let last = 0;
  const ident = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c);
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c >= '0' && c <= '9' && !ident(text[i - 1])) {
      let j = i;
      while (j < text.length && text[j] >= '0' && text[j] <= '9') j++;
      const n = BigInt(text.slice(i, j));
      if (n > SAFE) {
        const marker = `__lilith_long_${nonce}_${bigs.size}`;
        bigs.set(marker, n);
        out += text.slice(last, i) + JSON.stringify(marker);
        last = j;
      }
      i = j;
    } else if (ident(c)) {
      while (i < text.length && ident(text[i])) i++;
    } else i++;
  }
  if (bigs.size === 0) return p;
  out += text.slice(last);
  const answer = cedar.policyToJson(out);
  if (answer.type === 'failure') throw new UnsupportedError(`unsupported: policy ${p.id}: cannot place its large Long literals`);
  const placed = new Set<string>();
  const json = place(answer.json, bigs, placed) as NamedPolicy['json'];
  if (placed.size !== bigs.size) throw new UnsupportedError(`unsupported: policy ${p.id}: a large Long literal outside an expression`);
  return { ...p, json };
}

function place(v: unknown, bigs: Map<string, bigint>, placed: Set<string>): unknown {
  if (Array.isArray(v)) return v.map((x) => place(x, bigs, placed));
  if (!v || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === 'Value' && typeof o.Value === 'string' && bigs.has(o.Value)) {
    placed.add(o.Value);
    return { Value: bigs.get(o.Value)! };
  }
  if (keys.length === 1 && keys[0] === 'neg') {
    const inner = place((o.neg as { arg?: unknown })?.arg, bigs, placed) as { Value?: unknown } | undefined;
    // -<digits> is one literal in Cedar (so -2^63 is one); a neg of a safe literal stays a neg.
    if (inner && typeof inner.Value === 'bigint') return { Value: -inner.Value };
  }
  const out: Record<string, unknown> = {};
  for (const k of keys)
    Object.defineProperty(out, k, { value: place(o[k], bigs, placed), enumerable: true, writable: true, configurable: true });
  return out;
}
