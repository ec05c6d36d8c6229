export { validateSpiffeId, trustDomainOf } from './spiffe.js';
export {
  parseSelector,
  selectorMatches,
  SelectorError,
  type ContainerFacts,
  type ProcessFacts,
  type ParsedSelector,
} from './selectors.js';
export { parseContainerCgroup, type ContainerCgroup, type ContainerRuntime } from './container-cgroup.js';
export {
  DEFAULT_WORKLOAD_DIR,
  checkWorkloadDir,
  checkWorkloadDirPath,
  WorkloadDirError,
  type WorkloadDirErrorCode,
} from './workload-metadata.js';
export {
  compileRegistrations,
  resolveIdentity,
  findAmbiguities,
  type CompiledRegistration,
  type ResolvedIdentity,
  type Registered,
} from './registry.js';
export { readProcessFacts, containerFacts, type ProcessFactsOptions } from './process-facts.js';
