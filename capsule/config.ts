// lilith.json: what Cedar cannot hold. Shared by the pipeline (validates it,
// puts it in the capsule) and the enforcer (classifiers, registrations, kernel).
// The JSON Schema in capsule/lilith.schema.json is the authority; these types mirror it.

/** A SPIRE-style selector: "unix:uid:1000", "unix:gid:100", "unix:user:alice",
 * "unix:group:dev", "unix:path:/usr/bin/node", "unix:sha256:<hex>", "cgroup:/lilith/agents/x",
 * and for containers "k8s:ns:agents", "k8s:sa:coder", "k8s:pod-label:app:coder", "k8s:pod-uid:<uid>",
 * "docker:label:<key>:<value>", "docker:image_id:sha256:<hex>", "docker:id:<hex>" (identity/selectors.ts). */
export type Selector = string;

export type SeccompProfileName = 'strict' | 'standard' | 'jit';

export interface FilesystemRules {
  read_only?: string[];
  read_write?: string[];
}

/** A confinement layer `lilith run` may start an agent without, when this kernel lacks it (docs/confinement.md). */
export type DegradableLayer = 'landlock' | 'landlock-truncate' | 'landlock-net' | 'landlock-ioctl-dev' | 'landlock-scope' | 'seccomp';

export interface Registration {
  spiffe_id: string;
  /** All selectors must match (AND). The most specific registration wins. */
  selectors: Selector[];
  /** AgentGroup entity ids the agent is a member of. */
  groups?: string[];
  profile?: SeccompProfileName;
  /** Allows anonymous executable memory (JIT runtimes) past the W^X hooks. */
  jit?: boolean;
  filesystem?: FilesystemRules;
  /** Layers this agent may run without when the kernel lacks them; any other missing layer refuses the agent. */
  allow_degraded?: DegradableLayer[];
  /** Programs only this agent may exec, besides kernel.exec_allowlist (BPF-LSM, by inode). */
  exec_allowlist?: string[];
}

/** A classifier sets taint bits from what flowed into the session. Exactly one trigger in `when`. */
export interface ClassifierRule {
  id: string;
  when: {
    tool?: string;
    /** With `tool`: a tool argument name and a glob (`*` any run, `?` one char) its value must match. */
    argument?: string;
    glob?: string;
    /** Any destination not in this Zone (per entities.json) sets the bits. */
    upstream_not_in_zone?: string;
    /** A content detector run on responses: private_key, aws_access_key, card_number, email. */
    response_detector?: 'private_key' | 'aws_access_key' | 'card_number' | 'email';
  };
  /** Taint label names (keys of taint_labels). */
  set: string[];
}

export interface Upstream {
  /** "host:port" or "[v6]:port": the original destination that names this upstream. */
  address: string;
  /** What the destination speaks, enforced by the proxy: mcp and http accept HTTP/1 only, tls a TLS ClientHello only, tcp opaque bytes (decided at connect, server may speak first). */
  kind: 'mcp' | 'http' | 'tcp' | 'tls';
  /**
   * PEM certificate(s) of the CA that signs this upstream's TLS certificate: when the
   * enforcer intercepts TLS to it, the upstream is verified against these only
   * (pinned) instead of the system store.
   */
  ca?: string;
  /** TLS origination: the agent's plaintext HTTP, once decided, is relayed over TLS 1.3 (kind http or mcp); on kind tls (intercepted) only client_certificate. */
  tls?: UpstreamTls;
}

export interface UpstreamTls {
  /** SNI and the name the upstream's certificate must carry (default: the host of `address`). */
  server_name?: string;
  /** Port TLS is originated to (default: the port of `address`). */
  port?: number;
  /** Present the agent's X.509-SVID (SPIFFE ID in the URI SAN) from the enforcer's identity CA. */
  client_certificate?: boolean;
}

export interface ProxyConfig {
  listen: string;
  listen6?: string;
  dns_listen: string;
  admin_listen: string;
  max_header_bytes: number;
  max_body_bytes: number;
  idle_timeout_ms: number;
}

export interface KernelConfig {
  /** Agent cgroup subtree, relative to the cgroup2 mount. */
  cgroup_root: string;
  heartbeat_interval_ms: number;
  heartbeat_ttl_ms: number;
  deny_socket_families?: string[];
  exec_allowlist?: string[];
  /** Unix socket paths managed agents may connect or send to ("\u0000name" for abstract). Default: none. */
  unix_allowlist?: string[];
}

export interface LilithConfig {
  $schema?: string;
  version: 1;
  trust_domain: string;
  /** Label name → bit number (0..63). */
  taint_labels: Record<string, number>;
  registrations: Registration[];
  classifiers: ClassifierRule[];
  /** Alias → address. An alias names the MCPServer entity for that destination. */
  upstreams: Record<string, Upstream>;
  proxy: ProxyConfig;
  kernel: KernelConfig;
  /** What the enforcer does when the active capsule expires. */
  on_expiry: 'fail_closed' | 'keep';
}
