// cedar-wasm's JSON form of a policy (policyToJson) carries Long literals as JS
// numbers, which round above 2^53: 9007199254740993 arrives as 9007199254740992.
// Both readers of policy JSON that must be exact (the compiled engine and the
// prover) replace such literals in the text by unique string markers before
// conversion; each marker's place in the JSON says where its exact value goes.
import { randomBytes } from 'node:crypto';
import type { NamedPolicy } from './policy-set.js';
import * as cedar from './wasm-loader.js';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export class LongLiteralError extends Error {
  readonly code = 'long_literal';
}

/**
 * `p`'s JSON with every Long literal beyond 2^53 − 1 a string marker, and each
 * marker's exact value. A `-<digits>` literal becomes a `neg` of its marker:
 * callers fold it back, so -2^63 (whose digits alone are out of range) stays one literal.
 */
export function markLongLiterals(p: NamedPolicy): { json: NamedPolicy['json']; bigs: Map<string, bigint> } {
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
  if (bigs.size === 0) return { json: p.json, bigs };
  out += text.slice(last);
  const answer = cedar.policyToJson(out);
  if (answer.type === 'failure') throw new LongLiteralError(`policy ${p.id}: cannot place its Long literals beyond 2^53`);
  return { json: answer.json as NamedPolicy['json'], bigs };
}
