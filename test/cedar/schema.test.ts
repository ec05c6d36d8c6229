import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CedarSchemaError, closure, readSchema } from '../../cedar/schema.js';

const TEXT = `
type Args = { path?: String, tags: Set<String> };
type Ctx = { tool: String, arguments: Args, ip?: ipaddr, who: User };
entity Org; entity Group in [Org]; entity User in [Group] { name: String };
action "all"; action "files" in ["all"];
action read_file in ["files"] appliesTo { principal: [User], resource: [Group], context: Ctx };
`;

test('readSchema: common types inlined, names resolved, hierarchies closed', () => {
  const s = readSchema(TEXT);
  assert.deepEqual(s.namespaces, []);
  assert.deepEqual(s.entityTypes.get('User'), {
    memberOfTypes: ['Group'],
    ancestorTypes: ['Group', 'Org'],
    shape: { kind: 'Record', additionalAttributes: false, attributes: { name: { type: { kind: 'String' }, required: true } } },
    tags: false,
    enum: false,
  });
  const a = s.actions.get('read_file')!;
  assert.deepEqual(a.ancestors, ['files', 'all']);
  assert.deepEqual(a.appliesTo?.principalTypes, ['User']);
  const ctx = a.appliesTo?.context;
  assert.equal(ctx?.kind, 'Record');
  if (ctx?.kind !== 'Record') return;
  assert.deepEqual(ctx.attributes.ip, { type: { kind: 'Extension', name: 'ipaddr' }, required: false });
  assert.deepEqual(ctx.attributes.who.type, { kind: 'Entity', name: 'User' });
  assert.deepEqual(ctx.attributes.arguments.type, {
    kind: 'Record',
    additionalAttributes: false,
    attributes: {
      path: { type: { kind: 'String' }, required: false },
      tags: { type: { kind: 'Set', element: { kind: 'String' } }, required: true },
    },
  });
});

test('readSchema: other namespaces are reported, not read', () => {
  const s = readSchema('namespace N { entity E; } entity F;');
  assert.deepEqual(s.namespaces, ['N']);
  assert.deepEqual([...s.entityTypes.keys()], ['F']);
});

test('readSchema: errors carry a code', () => {
  const coded = (code: string) => (e: unknown) => e instanceof CedarSchemaError && e.code === code && /^schema: /.test(e.message);
  assert.throws(() => readSchema('entity A { x: Nope };'), coded('invalid'));
  assert.throws(() => readSchema('type A = B; type B = A; entity E { x: A };'), coded('recursive_type'));
});

test('closure: depth first, no repeats, cycles end', () => {
  const g: Record<string, string[]> = { a: ['b', 'c'], b: ['a'], c: ['d'] };
  assert.deepEqual(
    closure(['a'], (n) => g[n] ?? []),
    ['a', 'c', 'd', 'b'],
  );
});
