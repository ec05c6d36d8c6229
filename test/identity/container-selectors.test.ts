// Container identity: cgroup paths as the runtimes and cgroup drivers write
// them, the operator's metadata files, and SPIRE's k8s/docker selectors parsed,
// refused and matched (identity/container-cgroup.ts, workload-metadata.ts, selectors.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileRegistrations,
  containerFacts,
  findAmbiguities,
  parseContainerCgroup,
  parseSelector,
  resolveIdentity,
  SelectorError,
  type ProcessFacts,
} from '../../identity/index.js';
import { checkConfig } from '../../capsule/config-check.js';

const ID = 'a3f1c9e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a6';
const ID2 = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const UID = '0c3b9f2e-1b3c-4d5e-8f9a-0b1c2d3e4f5a';
const UID_ = UID.replaceAll('-', '_');

test('cgroup paths: containerd, cri-o, docker and podman under the systemd and cgroupfs drivers', () => {
  const cases: [string, ReturnType<typeof parseContainerCgroup>][] = [
    // containerd + kubelet, systemd driver (burstable, besteffort, guaranteed QoS)
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { runtime: 'containerd', id: ID, podUid: UID },
    ],
    [
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { runtime: 'containerd', id: ID, podUid: UID },
    ],
    [`/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`, { runtime: 'containerd', id: ID, podUid: UID }],
    // containerd, cgroupfs driver (k3s, kubeadm with cgroupfs)
    [`/kubepods/burstable/pod${UID}/${ID}`, { runtime: 'containerd', id: ID, podUid: UID }],
    [`/kubepods/pod${UID}/${ID}`, { runtime: 'containerd', id: ID, podUid: UID }],
    // cri-o, systemd and cgroupfs drivers
    [
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`,
      { runtime: 'cri-o', id: ID, podUid: UID },
    ],
    [`/kubepods/besteffort/pod${UID}/crio-${ID}`, { runtime: 'cri-o', id: ID, podUid: UID }],
    // kind: the kubelet nested under its own slice
    [
      `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { runtime: 'containerd', id: ID, podUid: UID },
    ],
    // a static pod's mirror: the UID is a 32-hex config hash
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d8a7e2e3f0b7c33d1ec8b1e7ac6d0a1.slice/cri-containerd-${ID}.scope`,
      { runtime: 'containerd', id: ID, podUid: '8d8a7e2e3f0b7c33d1ec8b1e7ac6d0a1' },
    ],
    // the pod level itself (no container yet)
    [`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`, { runtime: 'unknown', podUid: UID }],
    // docker: systemd and cgroupfs drivers
    [`/system.slice/docker-${ID}.scope`, { runtime: 'docker', id: ID }],
    [`/docker/${ID}`, { runtime: 'docker', id: ID }],
    // podman: rootful, rootless, cgroupfs, and the split "container" sub-cgroup
    [`/machine.slice/libpod-${ID}.scope`, { runtime: 'podman', id: ID }],
    [`/machine.slice/libpod-${ID}.scope/container`, { runtime: 'podman', id: ID }],
    [`/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`, { runtime: 'podman', id: ID }],
    [`/libpod_parent/libpod-${ID}`, { runtime: 'podman', id: ID }],
  ];
  for (const [path, want] of cases) assert.deepEqual(parseContainerCgroup(path), want, path);
});

test('cgroup paths: hosts processes, monitors and look-alikes are not containers', () => {
  for (const path of [
    '/',
    '/user.slice/user-0.slice/session-3.scope',
    '/system.slice/containerd.service',
    '/system.slice/docker.service',
    '/lilith/agents/coder',
    // conmon, the runtime's monitor: not the workload
    `/machine.slice/libpod-conmon-${ID}.scope`,
    `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-conmon-${ID}.scope`.replace(
      `kubepods-besteffort-pod${UID_}.slice/`,
      '',
    ),
    // "pod<uid>" outside any kubepods level is someone's own cgroup name
    `/lilith/agents/pod${UID}`,
    // short or upper-case ids
    '/system.slice/docker-abc123.scope',
    `/system.slice/docker-${ID.toUpperCase()}.scope`,
  ])
    assert.equal(parseContainerCgroup(path), null, path);
  // The monitor inside a pod's cgroup: the pod, but no container.
  assert.deepEqual(
    parseContainerCgroup(`/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-conmon-${ID}.scope`),
    { runtime: 'unknown', podUid: UID },
  );
});

test('selectors: k8s and docker forms parse (SPIRE syntax: label selectors are <key>:<value>)', () => {
  const ok: [string, string, string, string?][] = [
    ['k8s:ns:agents', 'k8s-ns', 'agents'],
    ['k8s:sa:coder', 'k8s-sa', 'coder'],
    [`k8s:pod-uid:${UID}`, 'k8s-pod-uid', UID],
    ['k8s:pod-name:coder-7f9c-x2', 'k8s-pod-name', 'coder-7f9c-x2'],
    ['k8s:pod-label:app:coder', 'k8s-pod-label', 'app:coder', 'app'],
    ['k8s:pod-label:app.kubernetes.io/name:coder', 'k8s-pod-label', 'app.kubernetes.io/name:coder', 'app.kubernetes.io/name'],
    ['k8s:pod-label:tier:', 'k8s-pod-label', 'tier:', 'tier'],
    ['k8s:container-name:agent', 'k8s-container-name', 'agent'],
    [`docker:id:${ID}`, 'docker-id', ID],
    [`docker:image_id:sha256:${ID2}`, 'docker-image-id', `sha256:${ID2}`],
    [`docker:image_id:${ID2}`, 'docker-image-id', `sha256:${ID2}`],
    ['docker:label:com.example.agent:coder', 'docker-label', 'com.example.agent:coder', 'com.example.agent'],
    [
      'docker:label:org.opencontainers.image.source:https://git.example/a',
      'docker-label',
      'org.opencontainers.image.source:https://git.example/a',
    ],
  ];
  for (const [text, kind, value, key] of ok) {
    const s = parseSelector(text);
    assert.equal(s.kind, kind, text);
    assert.equal(s.value, value, text);
    if (key) assert.equal(s.key, key, text);
  }
});

test('selectors: malformed k8s and docker selectors are refused with a message naming the problem', () => {
  const bad: [string, string, RegExp][] = [
    ['k8s:ns:Agents', 'bad_value', /namespace must be a DNS label/],
    [`k8s:ns:${'a'.repeat(64)}`, 'bad_value', /namespace must be a DNS label/],
    ['k8s:sa:-coder', 'bad_value', /service account must be a DNS subdomain/],
    ['k8s:pod-uid:not-a-uid', 'bad_value', /pod UID must be a lowercase UUID/],
    [`k8s:pod-uid:${UID.toUpperCase()}`, 'bad_value', /pod UID/],
    ['k8s:pod-label:app', 'bad_value', /expected k8s:pod-label:<key>:<value>/],
    ['k8s:pod-label:-app:x', 'bad_value', /label key "-app"/],
    ['k8s:pod-label:Bad_Prefix/app:x', 'bad_value', /label key/],
    ['k8s:pod-label:app:has space', 'bad_value', /label value "has space"/],
    ['k8s:container-name:Agent', 'bad_value', /container name/],
    ['k8s:namespace:agents', 'syntax', /expected k8s:\{ns,sa,pod-uid,pod-name,pod-label,container-name\}/],
    ['k8s:ns', 'syntax', /expected k8s:<kind>:<value>/],
    ['docker:id:abc123', 'bad_value', /full 64 lowercase hex/],
    ['docker:image_id:sha512:abc', 'bad_value', /image id must be sha256/],
    ['docker:label:novalue', 'bad_value', /expected docker:label:<key>:<value>/],
    ['docker:label:bad key:v', 'bad_value', /label key "bad key"/],
    ['docker:env:A=1', 'syntax', /expected docker:\{id,image_id,label\}/],
    [`docker:label:k:${'v'.repeat(1100)}`, 'syntax', /longer than 1024 characters/],
  ];
  for (const [text, code, msg] of bad) {
    assert.throws(
      () => parseSelector(text),
      (e: unknown) => e instanceof SelectorError && e.code === code && msg.test(e.message) && e.message.includes(text.slice(0, 20)),
      text,
    );
  }
});

test('lilith.json validation accepts the container selectors and reports a malformed one at its path', async () => {
  const { readFile } = await import('node:fs/promises');
  const base = JSON.parse(await readFile(new URL('../../../policies/lilith.json', import.meta.url), 'utf8'));
  const good = structuredClone(base);
  good.registrations.push({
    spiffe_id: `spiffe://${base.trust_domain}/agents/pod-coder`,
    selectors: ['cgroup:/kubepods.slice', 'k8s:ns:agents', 'k8s:sa:coder', 'k8s:pod-label:app:coder'],
  });
  assert.deepEqual(checkConfig(good), [], 'accepted');
  const badCfg = structuredClone(good);
  badCfg.registrations.at(-1).selectors[1] = 'k8s:ns:Agents';
  const issues = checkConfig(badCfg);
  const at = `/registrations/${badCfg.registrations.length - 1}/selectors/1`;
  assert.ok(
    issues.some((i) => i.path === at && /namespace must be a DNS label/.test(i.message)),
    JSON.stringify(issues),
  );
});

function metadataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-wl-'));
  mkdirSync(join(dir, 'pods'));
  mkdirSync(join(dir, 'containers'));
  writeFileSync(
    join(dir, 'pods', `${UID}.json`),
    JSON.stringify({ namespace: 'agents', service_account: 'coder', name: 'coder-0', labels: { app: 'coder', tier: 'dev' } }),
  );
  writeFileSync(
    join(dir, 'containers', `${ID}.json`),
    JSON.stringify({ name: 'agent', image_id: ID2, labels: { 'com.example.agent': 'coder' } }),
  );
  return dir;
}

test('container facts: ids from the path, names and labels from the metadata directory; registrations resolve on them', async () => {
  const dir = metadataDir();
  try {
    const path = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`;
    const container = await containerFacts(path, dir);
    assert.deepEqual(container, {
      runtime: 'containerd',
      id: ID,
      podUid: UID,
      pod: { namespace: 'agents', serviceAccount: 'coder', name: 'coder-0', labels: { app: 'coder', tier: 'dev' } },
      name: 'agent',
      imageId: `sha256:${ID2}`,
      labels: { 'com.example.agent': 'coder' },
    });
    const facts: ProcessFacts = { pid: 1, uid: 1000, cgroupPath: path, container };
    const regs = compileRegistrations([
      { spiffe_id: 'spiffe://t/pods', selectors: ['cgroup:/kubepods.slice'] },
      { spiffe_id: 'spiffe://t/ns', selectors: ['cgroup:/kubepods.slice', 'k8s:ns:agents'] },
      { spiffe_id: 'spiffe://t/coder', selectors: ['cgroup:/kubepods.slice', 'k8s:ns:agents', 'k8s:sa:coder', 'k8s:pod-label:app:coder'] },
      { spiffe_id: 'spiffe://t/other-ns', selectors: ['cgroup:/kubepods.slice', 'k8s:ns:web', 'k8s:sa:coder'] },
    ]);
    assert.equal(resolveIdentity(facts, regs)?.spiffeId, 'spiffe://t/coder', 'the most specific registration');
    const relabelled = { ...facts, container: { ...container!, pod: { ...container!.pod!, labels: { app: 'reviewer' } } } };
    assert.equal(resolveIdentity(relabelled, regs)?.spiffeId, 'spiffe://t/ns');
    const docker = compileRegistrations([
      { spiffe_id: 'spiffe://t/img', selectors: [`docker:image_id:sha256:${ID2}`, 'docker:label:com.example.agent:coder'] },
      { spiffe_id: 'spiffe://t/id', selectors: [`docker:id:${ID}`, `k8s:pod-uid:${UID}`, 'k8s:container-name:agent'] },
    ]);
    assert.equal(resolveIdentity(facts, [docker[0]])?.spiffeId, 'spiffe://t/img');
    assert.equal(resolveIdentity(facts, [docker[1]])?.spiffeId, 'spiffe://t/id');
    // Without metadata only the kernel-attested ids remain: k8s:ns and labels do not match.
    const bare = await containerFacts(path, join(dir, 'absent'));
    assert.equal(resolveIdentity({ ...facts, container: bare }, regs)?.spiffeId, 'spiffe://t/pods');
    assert.equal(resolveIdentity({ ...facts, container: bare }, [docker[1]]), null, 'container-name needs metadata');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('metadata files: oversized, malformed or out-of-shape files contribute nothing (fail closed)', async () => {
  const dir = metadataDir();
  try {
    const path = `/kubepods/burstable/pod${UID}/${ID}`;
    const write = (body: string) => writeFileSync(join(dir, 'pods', `${UID}.json`), body);
    for (const body of [
      '{"namespace": "agents", "labels": ',
      '["agents"]',
      JSON.stringify({ namespace: 'agents', labels: { app: 7 } }),
      JSON.stringify({ namespace: 'agents', labels: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v'])) }),
      JSON.stringify({ namespace: 'agents', pad: 'x'.repeat(70 * 1024) }),
    ]) {
      write(body);
      const c = await containerFacts(path, dir);
      assert.equal(c?.pod, undefined, body.slice(0, 60));
      assert.equal(c?.podUid, UID, 'the kernel-attested id stays');
    }
    // "__proto__" as a label key is just a key.
    write(JSON.stringify({ namespace: 'agents', labels: JSON.parse('{"__proto__": "x"}') }));
    const c = await containerFacts(path, dir);
    assert.equal(c?.pod?.namespace, 'agents');
    assert.equal(
      resolveIdentity({ pid: 1, container: c }, compileRegistrations([{ spiffe_id: 'spiffe://t/a', selectors: ['k8s:pod-label:app:x'] }])),
      null,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ambiguity: registrations on different namespaces or label values cannot both match; the same key and value can', () => {
  const regs = (a: string[], b: string[]) =>
    findAmbiguities(
      compileRegistrations([
        { spiffe_id: 'spiffe://t/a', selectors: a },
        { spiffe_id: 'spiffe://t/b', selectors: b },
      ]),
    );
  assert.deepEqual(regs(['k8s:ns:a', 'k8s:sa:x'], ['k8s:ns:b', 'k8s:sa:y']), []);
  assert.deepEqual(regs(['k8s:pod-label:app:a'], ['k8s:pod-label:app:b']), []);
  assert.equal(regs(['k8s:pod-label:app:a'], ['k8s:pod-label:tier:b']).length, 1, 'different keys: one pod can carry both');
  assert.equal(regs(['k8s:ns:a'], ['docker:label:x:y']).length, 1);
});
