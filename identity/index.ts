export { validateSpiffeId, trustDomainOf } from './spiffe.js';
export { parseSelector, selectorMatches, SelectorError, type ProcessFacts, type ParsedSelector } from './selectors.js';
export {
  compileRegistrations,
  resolveIdentity,
  findAmbiguities,
  type CompiledRegistration,
  type ResolvedIdentity,
  type Registered,
} from './registry.js';
export { readProcessFacts } from './process-facts.js';
