// JSON pointer → position in the original text, used for lilith.json/entities.json findings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { locateJsonPointer } from '../../pipeline/json-locate.js';
import { positionOfByteOffset, positionOfIndex } from '../../pipeline/source-position.js';

const text = `{
  "a\\"b": { "x": [] , "y": {} },
  "list": [ 1, [2, 3], { "k/e~y": "v,}]" , "z": -4.5e3 } ],
  "last": null
}`;

function at(pointer: string): string {
  const i = locateJsonPointer(text, pointer);
  return text.slice(i, i + 8);
}

test('locates values through objects, arrays, escaped keys and tricky strings', () => {
  assert.equal(at('/a"b/y'), '{} },\n  ');
  assert.equal(at('/list/1/1'), '3], { "k');
  assert.equal(at('/list/2/k~1e~0y'), '"v,}]" ,');
  assert.equal(at('/list/2/z'), '-4.5e3 }');
  assert.equal(at('/last'), 'null\n}');
  const line3 = text.split('\n')[2];
  assert.deepEqual(positionOfIndex(text, locateJsonPointer(text, '/list/2/z')), { line: 3, col: line3.indexOf('-4.5e3') + 1 });
});

test('a missing member points at the nearest existing parent', () => {
  assert.equal(at('/list/9'), '[ 1, [2,');
  assert.equal(locateJsonPointer(text, '/nope/deeper'), 0);
  assert.equal(locateJsonPointer(text, ''), 0);
});

test('byte offsets (cedar) and string indices agree on non-ASCII text', () => {
  const src = '// é ü\npermit (principal, action, resource) when { x };';
  const idx = src.indexOf('x }');
  assert.deepEqual(positionOfByteOffset(src, Buffer.byteLength(src.slice(0, idx))), positionOfIndex(src, idx));
  assert.deepEqual(positionOfIndex(src, idx), { line: 2, col: 45 });
});
