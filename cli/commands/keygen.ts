// `lilith keygen --out DIR`: a new Ed25519 signing key, its public key and a
// one-key trust file, ready for `lilith sign` and `lilith verify`.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { generateSigningKey, trustFromKeys, writeKeyFiles } from '../../capsule/index.js';

export const summary = 'generate an Ed25519 capsule signing key (and a one-key trust file)';

export const usage = `usage: lilith keygen --out DIR [--name NAME]

Writes into DIR:
  NAME.key     secret key (mode 0600; never overwritten)
  NAME.pub     public key {keyid, public_key}
  trust.json   trust file listing only this key, threshold 1 (not written if it exists)
NAME defaults to "lilith". The keyid is the hex SHA-256 of the raw public key.
For threshold signing, generate several keys and list their .pub entries in one
trust file with "threshold": k.
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(argv, { out: { type: 'string' }, name: { type: 'string', default: 'lilith' } }, usage);
    if (!values.out || positionals.length) throw new UsageError(usage.trimEnd());
    if (!/^[A-Za-z0-9._-]+$/.test(values.name)) throw new UsageError(`--name may contain only letters, digits, ".", "_" and "-"`);
    const key = generateSigningKey();
    if (await stat(join(values.out, `${values.name}.key`)).catch(() => null)) {
      process.stderr.write(`lilith keygen: ${join(values.out, `${values.name}.key`)} exists; refusing to overwrite a key\n`);
      return 2;
    }
    const { secretPath, publicPath } = await writeKeyFiles(values.out, key, values.name);
    const trustPath = join(values.out, 'trust.json');
    let trustNote = `trust file:  ${trustPath}`;
    try {
      await writeFile(trustPath, JSON.stringify(trustFromKeys([key], 1), null, 2) + '\n', { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      trustNote = `trust file:  ${trustPath} exists, left unchanged (add ${publicPath} to it by hand)`;
    }
    process.stdout.write(`keyid:       ${key.keyid}\nsecret key:  ${secretPath} (0600)\npublic key:  ${publicPath}\n${trustNote}\n`);
    return 0;
  });
}
