// The dataplane room's front door: the proxy and DNS front started over a snapshot
// source, and the origin resolvers that say where a connection was going and who
// opened it (the kernel's redirect records in production, a fixed origin in benches).
export { startDataplane, type Dataplane } from './dataplane.js';
export { KernelOriginResolver, StaticOriginResolver } from './origin.js';
export { InterceptionCa } from './tls/ca.js';
export { IdentityCa } from './tls/svid.js';
