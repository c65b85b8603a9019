// End-to-end checks with the official JavaScript client (@kubernetes/client-node 1.x)
// against Flotilla. Run by tests/all/clients.rs with KUBECONFIG pointing at a `flotilla up`
// cluster and NODE_PATH at the installed client (scripts/client-deps.sh). Arguments:
// NAMESPACE CMD_IMAGE (the hello-cmd guest). Exits non-zero on any mismatch.
import { createRequire } from 'node:module';
import { PassThrough, Readable } from 'node:stream';
import assert from 'node:assert/strict';

const require = createRequire(process.env.CLIENT_NODE_MODULES + '/');
const k8s = require('@kubernetes/client-node');

const [ns, image] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromDefault();
const core = kc.makeApiClient(k8s.CoreV1Api);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, seconds, f) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

await core.createNamespace({ body: { metadata: { name: ns } } });

// CRUD
const created = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'one', labels: { suite: 'js' } }, data: { k: 'v' } } });
assert.ok(created.metadata.uid);
const listed = await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'suite=js' });
assert.deepEqual(listed.items.map((i) => i.metadata.name), ['one']);

// an informer (list, then watch) sees adds, updates and deletes
const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, () => core.listNamespacedConfigMap({ namespace: ns }));
const events = [];
for (const verb of ['add', 'update', 'delete']) informer.on(verb, (o) => events.push(`${verb} ${o.metadata.name}`));
informer.on('error', (e) => events.push(`error ${e}`));
await informer.start();
await until('the informer to list', 10, () => events.includes('add one'));
await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'two' } } });
await core.patchNamespacedConfigMap(
  { name: 'one', namespace: ns, body: { data: { k: 'patched' } } },
  k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
);
await core.deleteNamespacedConfigMap({ name: 'two', namespace: ns });
await until('add/update/delete events', 20, () => ['add two', 'update one', 'delete two'].every((e) => events.includes(e)));
assert.ok(!events.some((e) => e.startsWith('error')), events.join(', '));
await informer.stop(); // (stopping aborts the watch, which the informer reports as an error)
const got = await core.readNamespacedConfigMap({ name: 'one', namespace: ns });
assert.deepEqual(got.data, { k: 'patched' });

// a 404 carries the Status
await assert.rejects(core.readNamespacedConfigMap({ name: 'two', namespace: ns }), (e) => e.code === 404 && String(e.body).includes('NotFound'));

// a pod: logs and exec
await core.createNamespacedPod({
  namespace: ns,
  body: {
    metadata: { name: 'cmd' },
    spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image, args: ['--sleep-ms', '600000'] }] },
  },
});
await until('pod Running', 60, async () => (await core.readNamespacedPod({ name: 'cmd', namespace: ns })).status?.phase === 'Running');
const log = await until('pod logs', 30, async () => {
  const text = await core.readNamespacedPodLog({ name: 'cmd', namespace: ns, container: 'main' });
  return text.includes('hello from hello-cmd') && text;
});
assert.ok(log.includes('hello from hello-cmd'));

const follow = new PassThrough();
let followed = '';
follow.on('data', (d) => (followed += d));
const logReq = await new k8s.Log(kc).log(ns, 'cmd', 'main', follow, { follow: true });
await until('followed logs', 30, () => followed.includes('hello from hello-cmd'));
logReq.abort();

async function exec(command, stdinText) {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const stdin = stdinText === undefined ? null : Readable.from([stdinText]);
  const status = await new Promise((resolve, reject) => {
    new k8s.Exec(kc).exec(ns, 'cmd', 'main', command, stdout, stderr, stdin, false, resolve).catch(reject);
  });
  await sleep(100);
  return { out, err, status };
}
const ok = await exec(['hello-cmd', '--exit', '0']);
assert.equal(ok.status.status, 'Success', JSON.stringify(ok));
assert.ok(ok.out.includes('arg: --exit'), ok.out);
const failed = await exec(['hello-cmd', '--exit', '3']);
assert.equal(failed.status.status, 'Failure');
assert.equal(failed.status.details.causes[0].message, '3');
const cat = await exec(['hello-cmd', '--cat'], 'from js\n');
assert.ok(cat.out.includes('stdin: from js'), JSON.stringify(cat));

await core.deleteNamespace({ name: ns });
console.log('javascript client OK');
process.exit(0);
