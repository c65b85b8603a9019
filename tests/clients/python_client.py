"""End-to-end checks with the official Kubernetes Python client against Flotilla.

Run by tests/all/clients.rs with KUBECONFIG pointing at a `flotilla up` cluster, once per
client version (see scripts/client-deps.sh). Arguments: NAMESPACE CMD_IMAGE, where
CMD_IMAGE is the hello-cmd guest (a command that prints a greeting and can sleep).
Exits non-zero, with the failed assertion, on any mismatch.
"""
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

ns, image = sys.argv[1], sys.argv[2]
config.load_kube_config()
core = client.CoreV1Api()

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

# create, get, list
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"suite": "py"}), data={"k": "v"})
created = core.create_namespaced_config_map(ns, cm)
assert created.metadata.uid and created.data == {"k": "v"}, created
listed = core.list_namespaced_config_map(ns, label_selector="suite=py")
assert [i.metadata.name for i in listed.items] == ["one"], listed.items
rv = listed.metadata.resource_version

# watch from the list's resourceVersion: sees a create and an update made after it
def later():
    time.sleep(1)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two", labels={"suite": "py"})))
    core.patch_namespaced_config_map("one", ns, {"data": {"k": "patched"}})

threading.Thread(target=later).start()
seen = []
w = watch.Watch()
for ev in w.stream(core.list_namespaced_config_map, ns, label_selector="suite=py", resource_version=rv, timeout_seconds=20):
    seen.append((ev["type"], ev["object"].metadata.name))
    if len(seen) == 2:
        w.stop()
assert seen == [("ADDED", "two"), ("MODIFIED", "one")], seen

# patch (strategic merge by default) and read back
core.patch_namespaced_config_map("one", ns, {"metadata": {"labels": {"extra": "yes"}}})
got = core.read_namespaced_config_map("one", ns)
assert got.data == {"k": "patched"} and got.metadata.labels == {"suite": "py", "extra": "yes"}, got

# delete, then a 404 with a Status
core.delete_namespaced_config_map("one", ns)
try:
    core.read_namespaced_config_map("one", ns)
    raise AssertionError("deleted ConfigMap still readable")
except ApiException as e:
    assert e.status == 404 and "NotFound" in e.body, (e.status, e.body)

# a pod: wait for it with a watch, read its logs, exec into it
pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="cmd"),
    spec=client.V1PodSpec(
        termination_grace_period_seconds=1,
        containers=[client.V1Container(name="main", image=image, args=["--sleep-ms", "600000"])],
    ),
)
core.create_namespaced_pod(ns, pod)
running = False
for ev in watch.Watch().stream(core.list_namespaced_pod, ns, field_selector="metadata.name=cmd", timeout_seconds=60):
    if ev["object"].status.phase == "Running":
        running = True
        break
assert running, "pod never Running"
deadline = time.time() + 30
log = ""
while time.time() < deadline and "hello from hello-cmd" not in log:
    log = core.read_namespaced_pod_log("cmd", ns, container="main")
    time.sleep(0.2)
assert "hello from hello-cmd" in log, log
out = stream(core.connect_get_namespaced_pod_exec, "cmd", ns, container="main",
             command=["hello-cmd", "--exit", "0"], stderr=True, stdin=False, stdout=True, tty=False)
assert "hello from hello-cmd" in out and "arg: --exit" in out, out

core.delete_namespace(ns)
print("python client", client.__version__ if hasattr(client, "__version__") else "", "OK")
