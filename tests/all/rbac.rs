//! Who you are and what you may do, with the real kubectl: ServiceAccount tokens from
//! `kubectl create token`, a user added the documented Kubernetes way (openssl key, a
//! CertificateSigningRequest, `kubectl certificate approve`, a kubeconfig with the
//! issued certificate), RBAC's default roles bound in one namespace checked against the
//! answers Kubernetes documents through `kubectl auth can-i` and real requests,
//! cross-namespace denial, escalation prevention, impersonation, revocation of a deleted
//! account's token, the registry under RBAC, and the token every pod gets mounted.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Cluster, guest, guest_path, wait_for};

/// `kubectl create token SA -n NS`.
fn token(c: &Cluster, ns: &str, sa: &str) -> String {
    c.kubectl(&["create", "token", sa, "-n", ns, "--duration", "15m"]).ok().trim().to_string()
}

/// kubectl with a bearer token instead of the kubeconfig's admin credentials.
fn as_token(c: &Cluster, token: &str, args: &[&str]) -> crate::harness::Run {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    c.kubectl(&all)
}

/// `kubectl auth can-i` as yes/no.
#[track_caller]
fn can_i(c: &Cluster, token: &str, ns: &str, verb: &str, what: &str) -> bool {
    let r = as_token(c, token, &["auth", "can-i", verb, what, "-n", ns]);
    match r.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("can-i {verb} {what} -n {ns}: {other:?} {}", r.stderr),
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rbac_default_roles_tokens_certificates_and_impersonation() {
    let c = Cluster::start();
    for ns in ["team", "other"] {
        c.kubectl(&["create", "namespace", ns]).ok();
    }
    // Every namespace gets its default account and the CA (controllers).
    wait_for(Duration::from_secs(20), "default ServiceAccount", || c.kubectl(&["get", "sa", "default", "-n", "team"]).code.eq(&0).then_some(()));
    assert!(c.jsonpath(&["configmap", "kube-root-ca.crt", "-n", "team"], "{.data.ca\\.crt}").starts_with("-----BEGIN CERTIFICATE-----"));

    let mut tokens = Vec::new();
    for (role, sa) in [("view", "viewer"), ("edit", "editor"), ("admin", "adminer")] {
        c.kubectl(&["create", "serviceaccount", sa, "-n", "team"]).ok();
        c.kubectl(&["create", "rolebinding", sa, "-n", "team", &format!("--clusterrole={role}"), &format!("--serviceaccount=team:{sa}")]).ok();
        tokens.push(token(&c, "team", sa));
    }
    let (viewer, editor, admin) = (&tokens[0], &tokens[1], &tokens[2]);
    let who = as_token(&c, viewer, &["auth", "whoami"]);
    assert!(who.ok().contains("system:serviceaccount:team:viewer"), "{}", who.stdout);
    assert!(who.stdout.contains("[system:serviceaccounts system:serviceaccounts:team system:authenticated]"), "{}", who.stdout);

    // The matrix Kubernetes documents for the user-facing roles, in their namespace.
    let matrix: &[(&str, &str, [bool; 3])] = &[
        ("get", "pods", [true, true, true]),
        ("list", "deployments.apps", [true, true, true]),
        ("get", "secrets", [false, true, true]),
        ("create", "pods", [false, true, true]),
        ("create", "deployments.apps", [false, true, true]),
        ("create", "pods/exec", [false, true, true]),
        ("delete", "configmaps", [false, true, true]),
        ("create", "roles.rbac.authorization.k8s.io", [false, false, true]),
        ("create", "rolebindings.rbac.authorization.k8s.io", [false, false, true]),
        ("get", "rolebindings.rbac.authorization.k8s.io", [false, false, true]),
        ("update", "resourcequotas", [false, false, false]),
        ("create", "localsubjectaccessreviews.authorization.k8s.io", [false, false, true]),
    ];
    for (verb, what, want) in matrix {
        for (i, t) in tokens.iter().enumerate() {
            assert_eq!(can_i(&c, t, "team", verb, what), want[i], "{} {verb} {what}", ["view", "edit", "admin"][i]);
        }
    }
    for t in &tokens {
        // Another namespace and cluster-scoped objects are out of reach.
        assert!(!can_i(&c, t, "other", "get", "pods"));
        assert!(!can_i(&c, t, "other", "list", "configmaps"));
        assert!(!can_i(&c, t, "team", "list", "nodes"));
        assert!(!can_i(&c, t, "team", "create", "namespaces"));
    }
    // Real requests get what can-i said, worded as Kubernetes words it.
    as_token(&c, viewer, &["get", "pods", "-n", "team"]).ok();
    assert_eq!(
        as_token(&c, viewer, &["get", "secrets", "-n", "team"]).err(),
        "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:team:viewer\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team\"\n"
    );
    assert_eq!(
        as_token(&c, editor, &["get", "pods", "-n", "other"]).err(),
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:team:editor\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\"\n"
    );
    assert_eq!(
        as_token(&c, admin, &["get", "nodes"]).err(),
        "Error from server (Forbidden): nodes is forbidden: User \"system:serviceaccount:team:adminer\" cannot list resource \"nodes\" in API group \"\" at the cluster scope\n"
    );
    as_token(&c, editor, &["create", "configmap", "settings", "-n", "team", "--from-literal=a=b"]).ok();
    as_token(&c, editor, &["create", "deployment", "web", "-n", "team", "--image", &guest("hello-http")]).ok();
    let r = as_token(&c, editor, &["create", "role", "r", "-n", "team", "--verb=get", "--resource=pods"]);
    assert!(r.err().contains("roles.rbac.authorization.k8s.io is forbidden: User \"system:serviceaccount:team:editor\" cannot create resource \"roles\""), "{}", r.stderr);
    // Watches are authorized too.
    assert!(as_token(&c, viewer, &["get", "secrets", "-n", "team", "--watch", "--request-timeout=2s"]).err().contains("Forbidden"));

    // Escalation prevention: admin may grant in its namespace what it holds, not more.
    as_token(&c, admin, &["create", "role", "reader", "-n", "team", "--verb=get,list", "--resource=pods,configmaps"]).ok();
    as_token(&c, admin, &["create", "rolebinding", "reader", "-n", "team", "--role=reader", "--serviceaccount=team:viewer"]).ok();
    let r = as_token(&c, admin, &["create", "role", "nodes", "-n", "team", "--verb=list", "--resource=nodes"]);
    assert!(
        r.err().contains("is attempting to grant RBAC permissions not currently held"),
        "escalation refused: {}",
        r.stderr
    );
    let r = as_token(&c, admin, &["create", "rolebinding", "grab", "-n", "team", "--clusterrole=cluster-admin", "--serviceaccount=team:adminer"]);
    assert!(r.err().contains("forbidden"), "binding cluster-admin refused: {}", r.stderr);
    assert!(!can_i(&c, admin, "team", "list", "nodes"));

    // can-i --list shows the rules of the roles bound.
    let list = as_token(&c, viewer, &["auth", "can-i", "--list", "-n", "team"]);
    assert!(list.ok().lines().any(|l| l.starts_with("pods ") && l.contains("[get list watch]")), "{}", list.stdout);
    assert!(list.stdout.lines().any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")), "{}", list.stdout);

    // A user added with a CertificateSigningRequest, bound through its group.
    let dir = c.path().to_path_buf();
    openssl(&["genrsa", "-out", "alice.key", "2048"], &dir);
    openssl(&["req", "-new", "-key", "alice.key", "-out", "alice.csr", "-subj", "/CN=alice/O=devs"], &dir);
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join("alice.csr")).expect("csr"));
    c.apply(&format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: alice}}\nspec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  usages: [client auth]\n"
    ));
    assert_eq!(c.jsonpath(&["csr", "alice"], "{.spec.username}"), "flotilla-admin");
    assert_eq!(c.kubectl(&["certificate", "approve", "alice"]).ok(), "certificatesigningrequest.certificates.k8s.io/alice approved\n");
    let cert = base64::engine::general_purpose::STANDARD.decode(c.jsonpath(&["csr", "alice"], "{.status.certificate}")).expect("issued certificate");
    std::fs::write(dir.join("alice.crt"), cert).expect("write cert");
    let key = dir.join("alice.key");
    let crt = dir.join("alice.crt");
    c.kubectl(&["config", "set-credentials", "alice", "--client-key", key.to_str().expect("utf-8"), "--client-certificate", crt.to_str().expect("utf-8"), "--embed-certs"]).ok();
    c.kubectl(&["config", "set-context", "alice", "--cluster=flotilla", "--user=alice"]).ok();
    let who = c.kubectl(&["--context", "alice", "auth", "whoami"]);
    assert!(who.ok().contains("alice") && who.stdout.contains("[devs system:authenticated]"), "{}", who.stdout);
    assert!(c.kubectl(&["--context", "alice", "get", "pods", "-n", "team"]).err().contains("User \"alice\" cannot list resource \"pods\""));
    c.kubectl(&["create", "rolebinding", "devs-view", "-n", "team", "--clusterrole=view", "--group=devs"]).ok();
    c.kubectl(&["--context", "alice", "get", "pods", "-n", "team"]).ok();
    assert!(c.kubectl(&["--context", "alice", "delete", "configmap", "settings", "-n", "team"]).err().contains("Forbidden"));

    // Impersonation: the admin may; an editor may impersonate ServiceAccounts of its
    // namespace (edit's rule) but not users.
    assert_eq!(c.kubectl(&["auth", "can-i", "get", "secrets", "-n", "team", "--as=system:serviceaccount:team:viewer"]).stdout.trim(), "no");
    assert_eq!(c.kubectl(&["auth", "can-i", "list", "pods", "-n", "team", "--as=bob", "--as-group=devs"]).stdout.trim(), "yes");
    as_token(&c, editor, &["get", "pods", "-n", "team", "--as=system:serviceaccount:team:viewer"]).ok();
    assert_eq!(
        as_token(&c, editor, &["get", "pods", "-n", "team", "--as=bob"]).err(),
        "Error from server (Forbidden): users \"bob\" is forbidden: User \"system:serviceaccount:team:editor\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope\n"
    );

    // The registry: pushing to team/… needs create on images in team, pulling get.
    let kc_for = |name: &str, t: &str| {
        let path = dir.join(format!("kubeconfig-{name}"));
        std::fs::copy(&c.kubeconfig, &path).expect("copy kubeconfig");
        let run = |args: &[&str]| {
            let out = Command::new("kubectl").args(args).env("KUBECONFIG", &path).output().expect("kubectl");
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["config", "set-credentials", name, "--token", t]);
        run(&["config", "set-context", "--current", "--user", name]);
        path
    };
    let wasm = guest_path("hello-cmd");
    let push = |kubeconfig: &Path| {
        Command::new(crate::harness::flotilla_bin())
            .args(["push", "--kubeconfig", kubeconfig.to_str().expect("utf-8"), wasm.to_str().expect("utf-8"), "team/app:v1"])
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("push")
    };
    let denied = push(&kc_for("viewer", viewer));
    assert!(!denied.status.success(), "the viewer may not push");
    let why = String::from_utf8_lossy(&denied.stderr);
    assert!(why.contains("403") || why.contains("denied"), "{why}");
    let pushed = push(&kc_for("editor", editor));
    assert!(pushed.status.success(), "the editor pushes: {}", String::from_utf8_lossy(&pushed.stderr));

    // A deleted account's tokens stop working at once.
    c.kubectl(&["delete", "serviceaccount", "viewer", "-n", "team"]).ok();
    assert_eq!(as_token(&c, viewer, &["get", "pods", "-n", "team"]).err(), "error: You must be logged in to the server (Unauthorized)\n");
    // A token for another audience is refused.
    let foreign = c.kubectl(&["create", "token", "editor", "-n", "team", "--audience", "vault"]).ok().trim().to_string();
    assert_eq!(as_token(&c, &foreign, &["get", "pods", "-n", "team"]).err(), "error: You must be logged in to the server (Unauthorized)\n");
}

#[test]
fn pods_get_their_account_token_mounted_and_legacy_token_secrets_are_filled() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "team"]).ok();
    c.kubectl(&["create", "serviceaccount", "robot", "-n", "team"]).ok();
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: worker, namespace: team}}\nspec:\n  serviceAccountName: robot\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: \"{}\"\n    args: [--sleep-ms, '600000']\n",
        guest("hello-cmd")
    ));
    c.kubectl(&["wait", "-n", "team", "--for=condition=Ready", "pod/worker", "--timeout=60s"]).ok();
    let mount = c.jsonpath(&["pod", "worker", "-n", "team"], "{.spec.containers[0].volumeMounts[0].mountPath}");
    assert_eq!(mount, "/var/run/secrets/kubernetes.io/serviceaccount");
    let volume = c.jsonpath(&["pod", "worker", "-n", "team"], "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    // The node wrote the token, CA and namespace; the token is the pod's identity.
    let uid = c.jsonpath(&["pod", "worker", "-n", "team"], "{.metadata.uid}");
    let dir = c.path().join("data/node/pods").join(&uid).join("volumes").join(&volume);
    assert_eq!(std::fs::read_to_string(dir.join("namespace")).expect("namespace file"), "team");
    assert!(std::fs::read_to_string(dir.join("ca.crt")).expect("ca file").starts_with("-----BEGIN CERTIFICATE-----"));
    let t = std::fs::read_to_string(dir.join("token")).expect("token file");
    let who = as_token(&c, &t, &["auth", "whoami"]);
    assert!(who.ok().contains("system:serviceaccount:team:robot"), "{}", who.stdout);
    assert!(who.stdout.contains("authentication.kubernetes.io/pod-name") && who.stdout.contains("[worker]"), "{}", who.stdout);
    // Bound to the pod: deleting it revokes the token.
    c.kubectl(&["delete", "pod", "worker", "-n", "team", "--wait=true"]).ok();
    assert_eq!(as_token(&c, &t, &["get", "pods", "-n", "team"]).err(), "error: You must be logged in to the server (Unauthorized)\n");

    // automountServiceAccountToken: false mounts nothing; a missing account is refused.
    c.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: quiet, namespace: team}}\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: c\n    image: \"{}\"\n",
        guest("hello-cmd")
    ));
    assert_eq!(c.jsonpath(&["pod", "quiet", "-n", "team"], "{.spec.volumes}"), "");
    let r = c.kubectl(&["run", "ghost", "-n", "team", "--image", "example.com/x:1", "--overrides", "{\"spec\":{\"serviceAccountName\":\"ghost\"}}"]);
    assert_eq!(r.err(), "Error from server (Forbidden): pods \"ghost\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found\n");

    // A kubernetes.io/service-account-token Secret gets a legacy token that works while
    // the Secret holds it.
    c.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: robot-token\n  namespace: team\n  annotations: {kubernetes.io/service-account.name: robot}\ntype: kubernetes.io/service-account-token\n");
    let legacy = wait_for(Duration::from_secs(20), "legacy token", || {
        let t = c.jsonpath(&["secret", "robot-token", "-n", "team"], "{.data.token}");
        (!t.is_empty()).then_some(t)
    });
    use base64::Engine as _;
    let legacy = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(legacy).expect("base64")).expect("utf-8");
    let who = as_token(&c, &legacy, &["auth", "whoami"]);
    assert!(who.ok().contains("system:serviceaccount:team:robot"), "{}", who.stdout);
    c.kubectl(&["delete", "secret", "robot-token", "-n", "team"]).ok();
    assert_eq!(as_token(&c, &legacy, &["auth", "whoami"]).err(), "error: You must be logged in to the server (Unauthorized)\n");
}
