// The trust file the daemon verifies capsules against: read at start and on SIGHUP.
import { readFileSync } from 'node:fs';
import { parseTrust, type Trust } from '../../capsule/index.js';
import { DaemonConfigError } from './config.js';

export function loadTrust(path: string): Trust {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DaemonConfigError('bad_trust', `cannot read trust file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseTrust(bytes, `trust file ${path}`);
  } catch (err) {
    throw new DaemonConfigError('bad_trust', (err as Error).message);
  }
}
