// The policy set the proxy benches run on (no side effects: the bench children import it).
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Copies the bundled policies to `dir`/p and lists Host::"localhost" as allowlisted and
 * internal: the bundled policies reach no loopback service unless the capsule lists it,
 * and the bench's HTTP upstream is "localhost". Returns the copy's path.
 */
export async function bundledPoliciesWithLocalhost(dir: string): Promise<string> {
  const p = join(dir, 'p');
  await cp('policies', p, { recursive: true });
  const entPath = join(p, 'entities.json');
  const entities = JSON.parse(await readFile(entPath, 'utf8')) as unknown[];
  entities.push({
    uid: { type: 'Host', id: 'localhost' },
    attrs: {},
    parents: [
      { type: 'Zone', id: 'allowlisted' },
      { type: 'Zone', id: 'internal' },
    ],
  });
  await writeFile(entPath, JSON.stringify(entities));
  return p;
}
