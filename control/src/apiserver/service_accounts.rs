//! ServiceAccounts in the API server: the TokenRequest API (`serviceaccounts/NAME/token`,
//! what `kubectl create token` and the nodes' projected tokens call) and the
//! ServiceAccount admission step of pods (Kubernetes' ServiceAccount admission plugin):
//! the account defaults to `default`, must exist when named, and its token, the cluster
//! CA and the namespace are mounted at /var/run/secrets/kubernetes.io/serviceaccount
//! unless automountServiceAccountToken is false.

use serde_json::{Value, json};

use super::error::ApiError;
use super::tokens::{self, Bound, Signer};

/// Where the token, CA and namespace are mounted in every container.
pub(crate) const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap holding the cluster CA in every namespace.
pub(crate) const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The projected token's lifetime (the kubelet's: an hour and seven seconds, so tokens
/// issued this way are recognisable).
const PROJECTED_EXPIRATION_SECONDS: i64 = 3607;

/// Pure: the ServiceAccount step of a pod's admission. `account` is the ServiceAccount
/// the pod names (None: not found); `suffix` makes the volume's name unique.
/// The account a pod spec names: serviceAccountName, else the deprecated serviceAccount,
/// else `default`.
pub(crate) fn account_name(spec: &Value) -> &str {
    spec["serviceAccountName"].as_str().filter(|s| !s.is_empty()).or_else(|| spec["serviceAccount"].as_str().filter(|s| !s.is_empty())).unwrap_or("default")
}

pub(crate) fn admit_pod(pod: &mut Value, account: Option<&Value>, suffix: &str) -> Result<(), String> {
    let name = account_name(&pod["spec"]).to_string();
    let spec = &mut pod["spec"];
    spec["serviceAccountName"] = json!(name);
    spec["serviceAccount"] = json!(name);
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
    // The namespace's default account is made by a controller right after the namespace;
    // a pod created in that moment is not refused for it.
    if account.is_none() && name != "default" {
        return Err(format!("error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"));
    }
    let spec = &mut pod["spec"];
    let automount = spec["automountServiceAccountToken"].as_bool().or_else(|| account.and_then(|a| a["automountServiceAccountToken"].as_bool())).unwrap_or(true);
    if !automount {
        return Ok(());
    }
    // A pod that mounts something at the path already keeps its own.
    if ["initContainers", "containers"].iter().flat_map(|k| spec[*k].as_array().into_iter().flatten()).any(|c| c["volumeMounts"].as_array().is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH))) {
        return Ok(());
    }
    let volume = format!("kube-api-access-{suffix}");
    let v = json!({
        "name": volume,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match spec["volumes"].as_array_mut() {
        Some(vs) => vs.push(v),
        None => spec["volumes"] = json!([v]),
    }
    for key in ["initContainers", "containers"] {
        for c in spec[key].as_array_mut().into_iter().flatten() {
            let m = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
            match c["volumeMounts"].as_array_mut() {
                Some(ms) => ms.push(m),
                None => c["volumeMounts"] = json!([m]),
            }
        }
    }
    Ok(())
}

/// What a TokenRequest asks for, checked as Kubernetes checks it.
#[derive(Debug, PartialEq)]
pub(crate) struct TokenSpec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// (kind, name, uid) of the object the token is bound to.
    pub bound: Option<(String, String, String)>,
}

/// Pure: reads and validates a TokenRequest body.
pub(crate) fn token_spec(body: &Value) -> Result<TokenSpec, String> {
    let spec = &body["spec"];
    let mut audiences: Vec<String> = spec["audiences"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(tokens::ISSUER.to_string());
    }
    let expiration_seconds = match spec["expirationSeconds"].as_i64() {
        None | Some(0) => tokens::DEFAULT_EXPIRATION_SECONDS,
        Some(s) if s < tokens::MIN_EXPIRATION_SECONDS => return Err("spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes".into()),
        Some(s) if s > tokens::MAX_EXPIRATION_SECONDS => return Err("spec.expirationSeconds: Invalid value: may not specify a duration larger than 2^32 seconds".into()),
        Some(s) => s,
    };
    let bound = match &spec["boundObjectRef"] {
        Value::Object(r) => {
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            if !matches!(kind.as_str(), "Pod" | "Secret") {
                return Err(format!("spec.boundObjectRef.kind: Unsupported value: \"{kind}\": supported values: \"Pod\", \"Secret\""));
            }
            let name = r.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            if name.is_empty() {
                return Err("spec.boundObjectRef.name: Required value".into());
            }
            Some((kind, name, r.get("uid").and_then(Value::as_str).unwrap_or("").to_string()))
        }
        _ => None,
    };
    Ok(TokenSpec { audiences, expiration_seconds, bound })
}

fn invalid(name: &str, why: &str) -> ApiError {
    ApiError::new(422, "Invalid", format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: {why}"))
}

/// POST serviceaccounts/NAME/token: issues a bound token for the account `name` in `ns`.
pub(crate) fn token_request(api: &super::Api, signer: &Signer, ns: &str, name: &str, mut body: Value) -> Result<Value, ApiError> {
    let spec = token_spec(&body).map_err(|why| invalid(name, &why))?;
    let sa_info = super::resources::find("", "v1", "serviceaccounts").expect("served");
    let sa = api.get(sa_info, Some(ns), name)?;
    let sa_uid = sa.value["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let bound = match &spec.bound {
        None => None,
        Some((kind, obj_name, uid)) => {
            let info = super::resources::find("", "v1", if kind == "Pod" { "pods" } else { "secrets" }).expect("served");
            let obj = api.get(info, Some(ns), obj_name).map_err(|_| invalid(name, &format!("spec.boundObjectRef: {} \"{obj_name}\" not found", info.plural)))?;
            let actual = obj.value["metadata"]["uid"].as_str().unwrap_or("").to_string();
            if !uid.is_empty() && *uid != actual {
                return Err(ApiError::conflict(info, obj_name, &format!("the UID in the bound object reference ({uid}) does not match the UID in record ({actual}); the object might have been deleted and then recreated")));
            }
            let node = (kind == "Pod").then(|| obj.value["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(|n| {
                let node_info = super::resources::find("", "v1", "nodes").expect("served");
                let node_uid = api.get(node_info, None, n).ok().and_then(|o| o.value["metadata"]["uid"].as_str().map(str::to_string)).unwrap_or_default();
                (n.to_string(), node_uid)
            })).flatten();
            Some(Bound { kind: kind.clone(), name: obj_name.clone(), uid: actual, node })
        }
    };
    let now = api.clock.now();
    let jti = uuid::Uuid::new_v4().to_string();
    let claims = tokens::bound_claims(ns, name, &sa_uid, &spec.audiences, now.timestamp(), spec.expiration_seconds, bound.as_ref(), &jti);
    let expires = now + chrono::Duration::seconds(spec.expiration_seconds);
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenRequest");
    body["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": null});
    body["spec"]["audiences"] = json!(spec.audiences);
    body["spec"]["expirationSeconds"] = json!(spec.expiration_seconds);
    body["status"] = json!({
        "token": signer.sign(&claims),
        "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "team"}, "spec": spec})
    }

    #[test]
    fn a_pod_gets_the_default_account_and_its_token_mounted_in_every_container() {
        let mut p = pod(json!({"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}], "initContainers": [{"name": "i"}], "volumes": [{"name": "data", "emptyDir": {}}]}));
        admit_pod(&mut p, None, "x1y2z").expect("default need not exist yet");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        let vols = p["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[1]["name"], "kube-api-access-x1y2z");
        assert_eq!(vols[1]["projected"]["sources"][0]["serviceAccountToken"]["path"], "token");
        for c in ["initContainers", "containers"].iter().flat_map(|k| p["spec"][*k].as_array().expect("list").iter()) {
            let m = c["volumeMounts"].as_array().expect("mounts").last().expect("mount").clone();
            assert_eq!(m, json!({"name": "kube-api-access-x1y2z", "readOnly": true, "mountPath": MOUNT_PATH}));
        }
    }

    #[test]
    fn automount_false_on_the_pod_or_the_account_and_a_missing_named_account() {
        let mut p = pod(json!({"containers": [{"name": "a"}], "automountServiceAccountToken": false}));
        admit_pod(&mut p, Some(&json!({})), "s").expect("ok");
        assert!(p["spec"]["volumes"].is_null());
        let mut p = pod(json!({"containers": [{"name": "a"}], "serviceAccountName": "robot"}));
        admit_pod(&mut p, Some(&json!({"automountServiceAccountToken": false})), "s").expect("ok");
        assert!(p["spec"]["volumes"].is_null());
        // The pod's own setting wins over the account's.
        let mut p = pod(json!({"containers": [{"name": "a"}], "serviceAccountName": "robot", "automountServiceAccountToken": true}));
        admit_pod(&mut p, Some(&json!({"automountServiceAccountToken": false})), "s").expect("ok");
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        let mut p = pod(json!({"containers": [{"name": "a"}], "serviceAccountName": "ghost"}));
        assert_eq!(admit_pod(&mut p, None, "s"), Err("error looking up service account team/ghost: serviceaccount \"ghost\" not found".to_string()));
    }

    #[test]
    fn token_requests_are_validated() {
        let t = token_spec(&json!({"spec": {}})).expect("defaults");
        assert_eq!(t, TokenSpec { audiences: vec![tokens::ISSUER.to_string()], expiration_seconds: 3600, bound: None });
        assert!(token_spec(&json!({"spec": {"expirationSeconds": 60}})).expect_err("too short").contains("less than 10 minutes"));
        let t = token_spec(&json!({"spec": {"audiences": ["vault"], "expirationSeconds": 600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}})).expect("ok");
        assert_eq!(t.bound, Some(("Pod".into(), "p".into(), "u".into())));
        assert!(token_spec(&json!({"spec": {"boundObjectRef": {"kind": "Node", "name": "n"}}})).is_err());
    }
}
