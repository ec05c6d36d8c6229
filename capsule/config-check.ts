// Validation of lilith.json: the JSON Schema (capsule/lilith.schema.json) for
// shape, then the cross-field rules a schema cannot say. Shared by `lilith
// validate` and anyone who wants to re-check a config taken from a capsule.
import { Ajv } from 'ajv';
import { trustDomainOf, validateSpiffeId } from '../identity/spiffe.js';
import { parseSelector, SelectorError } from '../identity/selectors.js';
import { compileRegistrations, findAmbiguities } from '../identity/registry.js';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { LilithConfig, Upstream } from './config.js';
import schema from './lilith.schema.json' with { type: 'json' };

export interface ConfigIssue {
  /** JSON pointer into lilith.json, e.g. "/classifiers/2/set/0" ("" = the whole document). */
  path: string;
  message: string;
}

export const configSchema = schema;

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validateShape = ajv.compile(schema);

const TRIGGERS = ['tool', 'upstream_not_in_zone', 'response_detector'] as const;

/** Cross-field rules; assumes the value already passed the schema. */
export function semanticIssues(config: LilithConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const bitOwner = new Map<number, string>();
  for (const [label, bit] of Object.entries(config.taint_labels)) {
    const other = bitOwner.get(bit);
    if (other !== undefined)
      issues.push({ path: `/taint_labels/${label}`, message: `taint label ${label} uses bit ${bit}, already used by ${other}` });
    else bitOwner.set(bit, label);
  }
  config.registrations.forEach((reg, i) => {
    const problem = validateSpiffeId(reg.spiffe_id);
    if (problem) issues.push({ path: `/registrations/${i}/spiffe_id`, message: `invalid SPIFFE ID "${reg.spiffe_id}": ${problem}` });
    else if (trustDomainOf(reg.spiffe_id) !== config.trust_domain) {
      issues.push({
        path: `/registrations/${i}/spiffe_id`,
        message: `SPIFFE ID "${reg.spiffe_id}" is outside the trust domain "${config.trust_domain}"`,
      });
    }
    const seen = new Set<string>();
    reg.selectors.forEach((s, j) => {
      if (seen.has(s)) issues.push({ path: `/registrations/${i}/selectors/${j}`, message: `selector "${s}" is listed twice` });
      seen.add(s);
      try {
        parseSelector(s);
      } catch (err) {
        if (!(err instanceof SelectorError)) throw err;
        issues.push({ path: `/registrations/${i}/selectors/${j}`, message: err.message });
      }
    });
  });
  // Two registrations one process could match, neither more specific: its identity would be ambiguous.
  if (!issues.some((x) => x.path.startsWith('/registrations/'))) {
    for (const problem of findAmbiguities(compileRegistrations(config.registrations))) {
      issues.push({ path: '/registrations', message: `ambiguous identity: ${problem}` });
    }
  }
  const ids = new Set<string>();
  config.classifiers.forEach((rule, i) => {
    const at = `/classifiers/${i}`;
    if (ids.has(rule.id)) issues.push({ path: `${at}/id`, message: `classifier id "${rule.id}" is used twice` });
    ids.add(rule.id);
    const triggers = TRIGGERS.filter((t) => rule.when[t] !== undefined);
    if (triggers.length !== 1) {
      issues.push({
        path: `${at}/when`,
        message: `classifier "${rule.id}" must have exactly one trigger (one of ${TRIGGERS.join(', ')}), has ${triggers.length ? triggers.join(' and ') : 'none'}`,
      });
    }
    const hasArg = rule.when.argument !== undefined;
    const hasGlob = rule.when.glob !== undefined;
    if (hasArg !== hasGlob) issues.push({ path: `${at}/when`, message: `classifier "${rule.id}": "argument" and "glob" go together` });
    if ((hasArg || hasGlob) && rule.when.tool === undefined)
      issues.push({ path: `${at}/when`, message: `classifier "${rule.id}": "argument"/"glob" need "tool"` });
    rule.set.forEach((label, j) => {
      if (!(label in config.taint_labels)) {
        issues.push({
          path: `${at}/set/${j}`,
          message: `classifier "${rule.id}" sets unknown taint label "${label}" (taint_labels has ${Object.keys(config.taint_labels).join(', ') || 'none'})`,
        });
      }
    });
  });
  for (const [alias, up] of Object.entries(config.upstreams)) issues.push(...upstreamTlsIssues(alias, up));
  if (config.kernel.heartbeat_ttl_ms <= config.kernel.heartbeat_interval_ms) {
    issues.push({ path: '/kernel/heartbeat_ttl_ms', message: 'heartbeat_ttl_ms must be longer than heartbeat_interval_ms' });
  }
  return issues;
}

const DNS_NAME = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

/** A pinned CA that parses as certificates, TLS origination only where plaintext HTTP is relayed, on kind tls only the client certificate. */
function upstreamTlsIssues(alias: string, up: Upstream): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = `/upstreams/${alias}`;
  if (up.ca !== undefined) {
    const blocks = up.ca.match(PEM_CERT) ?? [];
    if (!blocks.length) issues.push({ path: `${at}/ca`, message: `upstream "${alias}": ca holds no PEM certificate` });
    blocks.forEach((b, i) => {
      try {
        new X509Certificate(b);
      } catch (err) {
        issues.push({
          path: `${at}/ca`,
          message: `upstream "${alias}": certificate ${i + 1} in ca does not parse (${(err as Error).message})`,
        });
      }
    });
  }
  if (up.tls && up.kind === 'tls') {
    // Intercepted: the agent's SNI and port stand; only the client certificate applies.
    for (const k of ['server_name', 'port'] as const)
      if (up.tls[k] !== undefined)
        issues.push({
          path: `${at}/tls/${k}`,
          message: `upstream "${alias}": tls.${k} is for TLS origination (kind "http" or "mcp"); an intercepted "tls" upstream keeps the agent's SNI and port`,
        });
  } else if (up.tls) {
    if (up.kind !== 'http' && up.kind !== 'mcp')
      issues.push({
        path: `${at}/tls`,
        message: `upstream "${alias}": TLS origination relays the agent's plaintext HTTP, so kind must be "http" or "mcp" (is "${up.kind}")`,
      });
    const name = up.tls.server_name;
    if (name !== undefined && !isIP(name) && !DNS_NAME.test(name))
      issues.push({
        path: `${at}/tls/server_name`,
        message: `upstream "${alias}": server_name "${name}" is not a lowercase DNS name or IP address`,
      });
  }
  return issues;
}

/** All problems with a parsed lilith.json value; empty when it is valid. */
export function checkConfig(value: unknown): ConfigIssue[] {
  if (!validateShape(value)) {
    return (validateShape.errors ?? []).map((e) => {
      let path = e.instancePath;
      let message = e.message ?? 'is invalid';
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        path = `${path}/${extra}`;
        message = `unknown property "${extra}"`;
      } else if (e.keyword === 'required') {
        message = `missing required property "${(e.params as { missingProperty: string }).missingProperty}"`;
      } else if (e.keyword === 'enum') {
        message = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
      }
      return { path, message };
    });
  }
  return semanticIssues(value as unknown as LilithConfig);
}
