// `npm run bench -- [NAME...]`: runs named benchmarks (all when none given).
// Each bench/<name>.ts exports `summary` and `run(argv): Promise<void>` and prints
// its numbers next to a baseline measured in the same run.
const BENCHES = ['decide', 'proxy', 'flood', 'kernel', 'fleet', 'prove'] as const;

interface Bench {
  summary: string;
  run(argv: string[]): Promise<void>;
}

async function load(name: string): Promise<Bench | undefined> {
  try {
    return (await import(`./${name}.js`)) as Bench;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(`/${name}.js`)) return undefined;
    throw err;
  }
}

const argv = process.argv.slice(2);
if (argv.includes('--help')) {
  process.stdout.write(`usage: npm run bench -- [${BENCHES.join('|')}] [options]\n`);
  process.exit(0);
}
const named = argv.filter((a) => (BENCHES as readonly string[]).includes(a));
const rest = argv.filter((a) => !named.includes(a));
for (const name of named.length ? named : BENCHES) {
  const bench = await load(name);
  if (!bench) {
    process.stdout.write(`== ${name}: not available\n`);
    continue;
  }
  process.stdout.write(`== ${name}: ${bench.summary}\n`);
  await bench.run(rest);
}
