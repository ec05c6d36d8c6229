// Reads the active LSM list from securityfs.
import { readFileSync } from 'node:fs';

export function readLsmList(path = '/sys/kernel/security/lsm'): string[] | null {
  try {
    return readFileSync(path, 'utf8').trim().split(',').filter(Boolean);
  } catch {
    return null;
  }
}
