// Generated per schema record type: a check that a request value already has its
// runtime form (declared attributes of the declared types, no others, Longs that
// are safe integers, no entity references). True means "use it as is" — no copy,
// no allocation; false sends the value to the general converter in validate.ts,
// which converts it or reports what is wrong.
import type { SType } from './schema.js';

export type ShapeCheck = (v: unknown) => boolean;

const isPlain = (v: object) => {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
};

let counter = 0;

function gen(t: SType, v: string, out: string[], depth: number): boolean {
  const tmp = `x${counter++}`;
  switch (t.kind) {
    case 'String':
      out.push(`if (typeof ${v} !== 'string') return false;`);
      return true;
    case 'Bool':
      out.push(`if (typeof ${v} !== 'boolean') return false;`);
      return true;
    case 'Long':
      out.push(`if (!Number.isSafeInteger(${v})) return false;`);
      return true;
    case 'Set': {
      const i = `i${counter++}`;
      out.push(`if (!Array.isArray(${v})) return false;`);
      out.push(`for (let ${i} = 0; ${i} < ${v}.length; ${i}++) { const ${tmp} = ${v}[${i}];`);
      if (!gen(t.element, tmp, out, depth + 1)) return false;
      out.push('}');
      return true;
    }
    case 'Record': {
      const n = `n${counter++}`;
      out.push(`if (typeof ${v} !== 'object' || ${v} === null || Array.isArray(${v}) || !isPlain(${v})) return false;`);
      out.push(`let ${n} = 0;`);
      for (let i = 0; i < t.names.length; i++) {
        const k = t.names[i];
        const a = `a${counter++}`;
        // Names Object.prototype also has (toString, constructor…) must be own.
        const read =
          k in Object.prototype
            ? `(Object.hasOwn(${v}, ${JSON.stringify(k)}) ? ${v}[${JSON.stringify(k)}] : undefined)`
            : `${v}[${JSON.stringify(k)}]`;
        out.push(`const ${a} = ${read};`);
        out.push(`if (${a} === undefined) { ${t.required[i] ? 'return false;' : ''} } else { ${n}++;`);
        if (!gen(t.types[i], a, out, depth + 1)) return false;
        out.push('}');
      }
      // Exactly the attributes counted above: no undeclared or undefined-valued keys.
      out.push(`for (const k in ${v}) if (--${n} < 0) return false;`);
      out.push(`if (${n} !== 0) return false;`);
      return true;
    }
    case 'Entity':
      return false; // needs conversion to EUid
    case 'Ext':
      return false; // needs conversion to the extension value
  }
}

export function shapeCheck(t: SType): ShapeCheck {
  const out: string[] = [];
  if (!gen(t, 'v', out, 0)) return () => false;
  const body = `return function check(v) { ${out.join('\n')}\nreturn true; };`;
  return new Function('isPlain', body)(isPlain) as ShapeCheck;
}
