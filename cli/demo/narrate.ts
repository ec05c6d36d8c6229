// The demo's voice: numbered steps, indented detail, and plain notes about what
// was skipped and why. Everything goes to stdout; nothing here decides anything.
const started = Date.now();

export function say(line = ''): void {
  process.stdout.write(line + '\n');
}

/** "3. Release" with the seconds since the demo started. */
export function step(n: number, title: string): void {
  say('');
  say(`${n}. ${title}  [${((Date.now() - started) / 1000).toFixed(1)} s]`);
}

export function detail(text: string, indent = 3): void {
  for (const line of text.replace(/\n+$/, '').split('\n')) say(' '.repeat(indent) + line);
}

export function skipped(what: string, why: string): void {
  say(`   SKIPPED ${what}: ${why}`);
}

export function elapsedSeconds(): number {
  return (Date.now() - started) / 1000;
}

/** A fixed-width table; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
