// The dataplane room's front door: the proxy and DNS front started over a snapshot
// source, and the origin resolvers that say where a connection was going and who
// opened it (the kernel's redirect records in production, a fixed origin in benches).
export { startDataplane, type Dataplane } from './dataplane.js';
export { KernelOriginResolver, StaticOriginResolver } from './origin.js';
export { InterceptionCa } from './tls/ca.js';
export { IdentityCa } from './tls/svid.js';
// HTTP/2's wire constants (RFC 9113), for clients that speak it raw (the test kit's).
export {
  ERR as H2_ERR,
  FLAG as H2_FLAG,
  FRAME as H2_FRAME,
  frame as h2Frame,
  PREFACE as H2_PREFACE,
  SETTING as H2_SETTING,
} from './protocols/h2-frames.js';
