// Finds where a JSON pointer's value starts in the original JSON text, so config
// and entity errors can name a line and column instead of only a path. A small
// scanner over already-valid JSON (JSON.parse has accepted the text first).

/** String index of the value at `pointer` ("/a/0/b"), or of the deepest existing ancestor. */
export function locateJsonPointer(text: string, pointer: string): number {
  const segments =
    pointer === ''
      ? []
      : pointer
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const skipString = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const readString = (): string => {
    const start = i;
    skipString();
    return JSON.parse(text.slice(start, i)) as string;
  };
  const skipValue = (): void => {
    ws();
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (c === '{') {
          skipString();
          ws();
          i++; // colon
        }
        skipValue();
        ws();
        if (text[i] === ',') i++;
        else {
          i++; // close
          return;
        }
      }
    }
    while (i < text.length && !',}] \t\r\n'.includes(text[i])) i++;
  };

  ws();
  for (const seg of segments) {
    const valueStart = i;
    const c = text[i];
    if (c === '{') {
      i++;
      let found = false;
      ws();
      while (text[i] !== '}' && i < text.length) {
        ws();
        const key = readString();
        ws();
        i++; // colon
        ws();
        if (key === seg) {
          found = true;
          break;
        }
        skipValue();
        ws();
        if (text[i] === ',') i++;
        ws();
      }
      if (!found) return valueStart;
    } else if (c === '[') {
      const want = Number(seg);
      i++;
      ws();
      let n = 0;
      let found = false;
      while (text[i] !== ']' && i < text.length) {
        ws();
        if (n === want) {
          found = true;
          break;
        }
        skipValue();
        ws();
        if (text[i] === ',') i++;
        n++;
      }
      if (!found) return valueStart;
    } else {
      return valueStart;
    }
    ws();
  }
  return i;
}
