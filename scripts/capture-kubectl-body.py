#!/usr/bin/env python3
"""Capture the exact request bodies kubectl sends, e.g. its Kubernetes protobuf bodies.

kubectl -v=9 prints JSON request bodies but not protobuf ones, so this is a tiny HTTPS
API server on loopback that answers discovery from a built-in resource table and records
every write (POST, PUT, PATCH, DELETE) to OUT/NNN-METHOD-<path>.bin (the raw body, a
protobuf body starting with `k8s\\0`) with OUT/NNN-….txt beside it (method, path, query,
Content-Type). A write is not performed: it is answered with a 404 NotFound Status (use
--write-status to pick another code), so kubectl exits with an error after sending it. A
404 is also what makes clients fall back to older API versions (`kubectl auth whoami`
tries authentication.k8s.io v1, then v1beta1, then v1alpha1), so every attempt is
captured.

GETs of single objects answer a minimal object of the right kind, or the JSON file given
with --object PATH=FILE (e.g. a CertificateSigningRequest for `kubectl certificate
approve`, which GETs the CSR and PUTs it back with a condition). Lists are empty.
OpenAPI is not served: pass `--validate=false` to `kubectl create -f` / `apply`.

Usage (kubectl picks its minor version from /version, which says 1.32 here):

    scripts/capture-kubectl-body.py --out /tmp/cap &      # prints KUBECONFIG=…
    KUBECONFIG=/tmp/cap/kubeconfig kubectl create token sa --duration 10m
    ls /tmp/cap        # 001-POST-api_v1_namespaces_default_serviceaccounts_sa_token.bin …

Then copy a .bin to control/src/apiserver/protobuf/testdata/ and test its decoding
there. Needs python3 and the openssl CLI (for a throwaway self-signed certificate).
Stop it with Ctrl-C or by killing its pid.
"""

import argparse
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import urllib.parse

# (group, version, plural, singular, kind, namespaced, verbs, short names, subresources)
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
RESOURCES = [
    ("", "v1", "namespaces", "namespace", "Namespace", False, ALL, ["ns"], ["status"]),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ALL, ["sa"], ["token"]),
    ("", "v1", "secrets", "secret", "Secret", True, ALL, [], []),
    ("", "v1", "configmaps", "configmap", "ConfigMap", True, ALL, ["cm"], []),
    ("", "v1", "pods", "pod", "Pod", True, ALL, ["po"], ["status", "log", "exec"]),
    ("", "v1", "services", "service", "Service", True, ALL, ["svc"], ["status"]),
    ("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", True, ALL, ["quota"], ["status"]),
    ("apps", "v1", "deployments", "deployment", "Deployment", True, ALL, ["deploy"], ["status", "scale"]),
    ("batch", "v1", "jobs", "job", "Job", True, ALL, [], ["status"]),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", True, ALL, ["cj"], ["status"]),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ALL, ["ing"], ["status"]),
    ("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True, ALL, [], []),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False, ALL, [], []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True, ALL, [], []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
     "ClusterRoleBinding", False, ALL, [], []),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview",
     "SelfSubjectAccessReview", False, ["create"], [], []),
    ("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview",
     "SelfSubjectRulesReview", False, ["create"], [], []),
    ("authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview",
     "SubjectAccessReview", False, ["create"], [], []),
    ("authorization.k8s.io", "v1", "localsubjectaccessreviews", "localsubjectaccessreview",
     "LocalSubjectAccessReview", True, ["create"], [], []),
    ("authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview",
     "SelfSubjectReview", False, ["create"], [], []),
    ("authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", False, ["create"], [], []),
    ("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest",
     "CertificateSigningRequest", False, ALL, ["csr"], ["status", "approval"]),
]

LOCK = threading.Lock()
COUNTER = [0]


def group_versions():
    seen = []
    for r in RESOURCES:
        if (r[0], r[1]) not in seen:
            seen.append((r[0], r[1]))
    return seen


def api_version(group, version):
    return f"{group}/{version}" if group else version


def resource_list(group, version):
    out = []
    for g, v, plural, singular, kind, namespaced, verbs, short, subs in RESOURCES:
        if (g, v) != (group, version):
            continue
        entry = {"name": plural, "singularName": singular, "namespaced": namespaced,
                 "kind": kind, "verbs": verbs}
        if short:
            entry["shortNames"] = short
        if verbs == ALL:
            entry["categories"] = ["all"]
        out.append(entry)
        for sub in subs:
            out.append({"name": f"{plural}/{sub}", "singularName": "", "namespaced": namespaced,
                        "kind": kind, "verbs": ["create"] if sub == "token" else ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": api_version(group, version), "resources": out}


def group_list():
    groups = {}
    for g, v in group_versions():
        if g:
            groups.setdefault(g, []).append({"groupVersion": f"{g}/{v}", "version": v})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]}


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists",
           422: "Invalid", 500: "InternalError"}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    objects = {}
    out = "."
    write_status = 404
    quiet = False

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("capture: " + (fmt % args) + "\n")

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if path in self.objects:
            with open(self.objects[path], "rb") as f:
                return self.reply(200, json.load(f))
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                                    "platform": "linux/amd64"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self.reply(200, group_list())
        for g, v in group_versions():
            if path == ("/api/" + v if not g else f"/apis/{g}/{v}"):
                return self.reply(200, resource_list(g, v))
        obj = self.object_for(path)
        if obj is not None:
            return self.reply(200, obj)
        return self.reply(404, status(404, "NotFound", f"the server could not find {path}"))

    def object_for(self, path):
        """A minimal object for GET /api(s)/…/PLURAL/NAME, an empty list for …/PLURAL."""
        for g, v, plural, _, kind, namespaced, _, _, _ in RESOURCES:
            prefix = "/api/" + v if not g else f"/apis/{g}/{v}"
            ns = r"/namespaces/(?P<ns>[^/]+)" if namespaced else ""
            m = re.fullmatch(re.escape(prefix) + ns + "/" + plural + r"(/(?P<name>[^/]+))?", path)
            if not m:
                continue
            if not m.group("name"):
                return {"kind": kind + "List", "apiVersion": api_version(g, v),
                        "metadata": {"resourceVersion": "1"}, "items": []}
            meta = {"name": m.group("name"), "uid": "00000000-0000-0000-0000-000000000001",
                    "resourceVersion": "1", "creationTimestamp": "2025-01-01T00:00:00Z"}
            if namespaced:
                meta["namespace"] = m.group("ns")
            return {"kind": kind, "apiVersion": api_version(g, v), "metadata": meta}
        return None

    def record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
        name = re.sub(r"[^A-Za-z0-9.-]+", "_", url.path.strip("/"))
        base = os.path.join(self.out, f"{n:03d}-{self.command}-{name}")
        with open(base + ".bin", "wb") as f:
            f.write(body)
        with open(base + ".txt", "w") as f:
            f.write(f"{self.command} {url.path}\nquery: {url.query}\n"
                    f"Content-Type: {self.headers.get('Content-Type')}\n"
                    f"Kubectl-Command: {self.headers.get('Kubectl-Command')}\n"
                    f"bytes: {len(body)}\n")
        print(f"recorded {base}.bin ({self.command} {self.path}, "
              f"{self.headers.get('Content-Type')}, {len(body)} bytes)", flush=True)
        code = self.write_status
        self.reply(code, status(code, REASONS.get(code, "BadRequest"),
                                f"recorded by capture-kubectl-body.py as {base}.bin"))

    do_POST = do_PUT = do_PATCH = do_DELETE = record


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="directory for the bodies, cert and kubeconfig")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    p.add_argument("--object", action="append", default=[], metavar="PATH=FILE",
                   help="answer GET PATH with the JSON in FILE (repeatable)")
    p.add_argument("--write-status", type=int, default=404,
                   help="HTTP status answered to every write (default 404 NotFound)")
    p.add_argument("--quiet", action="store_true", help="do not log every request")
    args = p.parse_args()

    os.makedirs(args.out, exist_ok=True)
    cert, key = os.path.join(args.out, "server.crt"), os.path.join(args.out, "server.key")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
    # Number on after the bodies an earlier run left in OUT.
    COUNTER[0] = sum(1 for f in os.listdir(args.out) if f.endswith(".bin"))
    Handler.objects = dict(o.split("=", 1) for o in args.object)
    Handler.out, Handler.write_status, Handler.quiet = args.out, args.write_status, args.quiet

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]

    kubeconfig = os.path.join(args.out, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: capture
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: capture
  user:
    token: capture-token
contexts:
- name: capture
  context: {{cluster: capture, user: capture, namespace: default}}
current-context: capture
""")
    print(f"listening on https://127.0.0.1:{port}\nKUBECONFIG={kubeconfig}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
