// Certificates for TLS test upstreams (tests and benches), made by openssl:
// a self-signed server certificate (what a capsule pins with upstreams.*.ca, or
// an upstream whose certificate does not verify), and a CA with leaves it signs
// (a private CA in a trust store, or an agent's own CA in the red-team tests).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  dir: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function read(dir: string): TestCert {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  return { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8'), certPath, keyPath, dir };
}

/** A self-signed server certificate for `cn` (also valid for 127.0.0.1 unless `ip` is false), one day. */
export function makeCert(cn = 'localhost', opts: { ip?: boolean } = {}): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-tlsup-'));
  const san = `subjectAltName=DNS:${cn}${opts.ip === false ? '' : ',IP:127.0.0.1'}`;
  openssl([
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    san,
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  return read(dir);
}

/** A CA (basicConstraints CA:TRUE) named `name`, one day. */
export function makeCa(name: string): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-testca-'));
  openssl([
    'req',
    '-x509',
    ...EC,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  return read(dir);
}

/** A server certificate for `cn` (and 127.0.0.1) signed by `ca`; certPem is the leaf then the CA. */
export function issueLeaf(ca: TestCert, cn = 'localhost'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-testleaf-'));
  const csr = join(dir, 'req.csr');
  openssl(['req', '-new', ...EC, '-subj', `/CN=${cn}`, '-keyout', join(dir, 'key.pem'), '-out', csr]);
  const ext = join(dir, 'ext.cnf');
  writeFileSync(ext, `subjectAltName=DNS:${cn},IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  const leaf = join(dir, 'leaf.pem');
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certPath,
    '-CAkey',
    ca.keyPath,
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    ext,
    '-out',
    leaf,
  ]);
  writeFileSync(join(dir, 'cert.pem'), readFileSync(leaf, 'utf8') + ca.certPem);
  return read(dir);
}

export function rmCert(c: TestCert): void {
  rmSync(c.dir, { recursive: true, force: true });
}
