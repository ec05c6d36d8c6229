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
  for (const [name, sort] of [...decls.consts].sort(([a], [b]) => (a < b ? -1 : 1))) out += `(declare-const ${name} ${sort})\n`;
  return out;
}

/** Collects named Bool definitions; constants stay inline so they keep folding. */
export class Definitions {
  readonly lines: string[] = [];
  private readonly names = new Set<string>();

  define = (name: string, body: string): string => {
    if (body === TRUE || body === FALSE) return body;
    let n = name;
    for (let i = 2; this.names.has(n); i++) n = `${name}#${i}`;
    this.names.add(n);
    const s = sym(n);
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
