// A @grpc/grpc-js client run as the managed agent inside a kernel-redirected
// cgroup (kernel-tls.test.ts): it dials the real gRPC server's address over TLS,
// trusting the CA in argv; only the kernel sends it through the proxy. Calls
// Echo/Say then Admin/Wipe on one channel and prints one JSON line.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { GRPC_SERVICES } from './tls-upstreams.js';

const [target, caFile] = process.argv.slice(2);
const creds = grpc.credentials.createSsl(readFileSync(caFile));
const Echo = grpc.makeGenericClientConstructor(GRPC_SERVICES.echo, 'Echo');
const Admin = grpc.makeGenericClientConstructor(GRPC_SERVICES.admin, 'Admin');
const echo = new Echo(target, creds);
const admin = new Admin(target, creds, { channelOverride: echo.getChannel() });
const call = (c: grpc.Client, method: string, arg: string) =>
  new Promise<string>((resolve) =>
    (c as unknown as Record<string, (a: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void>)[method](
      Buffer.from(arg),
      (err, res) => resolve(err ? `error ${err.code}` : res!.toString()),
    ),
  );
const say = await call(echo, 'Say', 'hi');
const wipe = await call(admin, 'Wipe', '');
echo.close();
admin.close();
process.stdout.write(`${JSON.stringify({ pid: process.pid, say, wipe })}\n`);
