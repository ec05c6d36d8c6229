// Stage 5 (encoder): declarations and definitions as SMT-LIB text.
import type { Decls } from './compiler.js';
import { ancsFn, entitySort, sym, TRUE, FALSE } from './smt.js';

/** One datatype per entity type: a constructor over the entity id (eid: String). */
export function declareSorts(types: Iterable<string>): string {
  return [...types]
    .sort()
    .map((t) => `(declare-datatype ${entitySort(t)} ((${sym(`E.${t}.mk`)} (${sym(`E.${t}.eid`)} String))))\n`)
    .join('');
}

/** Uninterpreted ancestor functions and free constants of one query scope. */
export function declareScope(decls: Decls): string {
  let out = '';
  for (const key of [...decls.ancs].sort()) {
    const [from, to] = key.split('\u0000');
    out += `(declare-fun ${ancsFn(from, to)} (${entitySort(from)}) (Set ${entitySort(to)}))\n`;
  }
  for (const [name, [arg, ret]] of [...decls.funcs].sort(([a], [b]) => (a < b ? -1 : 1))) out += `(declare-fun ${name} (${arg}) ${ret})\n`;
  for (const [name, [arg, ret]] of [...decls.tagFns].sort(([a], [b]) => (a < b ? -1 : 1)))
    out += `(declare-fun ${name} (${arg} String) ${ret})\n`;
  for (const [name, sort] of [...decls.consts].sort(([a], [b]) => (a < b ? -1 : 1))) out += `(declare-const ${name} ${sort})\n`;
  return out;
}

/**
 * Collects named Bool definitions; constants stay inline so they keep folding.
 * A body defined before is not defined again: its first name is returned, so a
 * base policy identical to a head policy (the common case in a pull request)
 * costs nothing, and two identical sets get the same `auth` name (verifier.ts
 * folds head ⇒ base to false then).
 */
export class Definitions {
  readonly lines: string[] = [];
  private readonly names = new Set<string>();
  private readonly byBody = new Map<string, string>();

  define = (name: string, body: string): string => {
    if (body === TRUE || body === FALSE) return body;
    const known = this.byBody.get(body);
    if (known) return known;
    let n = name;
    for (let i = 2; this.names.has(n); i++) n = `${name}#${i}`;
    this.names.add(n);
    const s = sym(n);
    this.byBody.set(body, s);
    this.lines.push(`(define-fun ${s} () Bool ${body})\n`);
    return s;
  };

  text(): string {
    return this.lines.join('');
  }
}

export function assertAll(formulas: string[]): string {
  return formulas
    .filter((f) => f !== TRUE)
    .map((f) => `(assert ${f})\n`)
    .join('');
}
