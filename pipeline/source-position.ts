// Turning offsets into the `line:col` that editors and GitHub annotations use.
// cedar-wasm reports byte offsets into the UTF-8 text it was given; JSON
// locations come from json-locate.ts as string (UTF-16) indices.

export interface Position {
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  col: number;
}

/** Position of a UTF-16 string index. */
export function positionOfIndex(text: string, index: number): Position {
  const before = text.slice(0, Math.max(0, Math.min(index, text.length)));
  const lineStart = before.lastIndexOf('\n') + 1;
  let line = 1;
  for (let i = 0; i < lineStart; i++) if (before.charCodeAt(i) === 10) line++;
  return { line, col: before.length - lineStart + 1 };
}

/** Position of a UTF-8 byte offset (what cedar's source locations are). */
export function positionOfByteOffset(text: string, byteOffset: number): Position {
  const bytes = Buffer.from(text, 'utf8');
  const index = bytes.subarray(0, Math.max(0, Math.min(byteOffset, bytes.length))).toString('utf8').length;
  return positionOfIndex(text, index);
}
