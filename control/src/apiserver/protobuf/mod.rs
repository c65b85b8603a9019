//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! into the JSON object the same request would have carried as JSON.
//!
//! kubectl 1.32 sends protobuf for `create secret|configmap|namespace|deployment|job|…`,
//! `create token`, `auth can-i [--list]`, `auth whoami` and `certificate approve|deny`,
//! and never retries as JSON after a 415, so the API server converts such bodies here
//! and handles them like any JSON body. (`create -f` and `apply` send JSON.) To capture
//! what a kubectl command sends, see `scripts/capture-kubectl-body.py`; the captures live
//! in `testdata/`.
//!
//! Wire format: the 4-byte magic `k8s\0`, then a `runtime.Unknown` whose `typeMeta`
//! names apiVersion and kind and whose `raw` holds the k8s.io/api message.
//!
//! Invariants:
//! - The output is what Go's `encoding/json` would produce for the same Go object:
//!   `omitempty` scalars, strings, slices and maps are omitted when empty; pointer
//!   fields appear exactly when set (even when zero); non-pointer struct fields always
//!   appear (`"resources": {}`, `"strategy": {}`); a zero `metav1.Time` is `null`
//!   (`"creationTimestamp": null`). Go writes every non-pointer field to protobuf, so
//!   "absent" and "zero" are treated alike except for pointer fields.
//! - Byte fields are standard base64 with padding; quantities are strings; IntOrString
//!   is a number or a string according to its `type`; times are RFC 3339 in UTC.
//! - `status` is never converted: the server ignores it on create/update, as
//!   Kubernetes does. The one exception is CertificateSigningRequest: `kubectl
//!   certificate approve|deny` PUTs the whole CSR to its `approval` subresource, and the
//!   Approved or Denied condition it adds to `status.conditions` is the request, so a
//!   CSR's status is converted (conditions and certificate).
//! - A field this module does not convert is never dropped silently: when it is set,
//!   decoding fails with [`ProtoError::UnsupportedField`]. Not converted: PodSpec
//!   `ephemeralContainers`, `securityContext`, `affinity`, `dnsConfig`,
//!   `topologySpreadConstraints`, `resourceClaims`, `workloadRef`; Container
//!   `resizePolicy`, `restartPolicyRules`, `volumeDevices`, probes, `lifecycle`,
//!   `securityContext`; volume sources other than emptyDir, configMap, secret,
//!   hostPath and persistentVolumeClaim; env `fileKeyRef`; Job `podFailurePolicy` and
//!   `successPolicy`.
//!
//! This module unwraps the envelope, dispatches on apiVersion and kind, and holds the
//! [`Json`] builder with Go's field semantics and the scalar conversions every group uses.
//! The message conversions live by API group: `meta_v1` (ObjectMeta, selectors), `core_v1`
//! (Secret, ConfigMap, Namespace, Service, ServiceAccount and the pod template), `apps_v1`,
//! `batch_v1`, `networking_v1` (Ingress), `authentication_v1` (TokenRequest,
//! SelfSubjectReview of v1, v1beta1 and v1alpha1), `authorization_v1` (the access and
//! rules reviews), `certificates_v1` (CertificateSigningRequest) and `rbac_v1`.

mod apps_v1;
mod authentication_v1;
mod authorization_v1;
mod batch_v1;
mod certificates_v1;
mod core_v1;
mod meta_v1;
mod networking_v1;
mod rbac_v1;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_pb::api::authentication::{v1 as authn, v1alpha1 as authn_alpha, v1beta1 as authn_beta};
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value};

/// The media type of Kubernetes protobuf bodies.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtoError {
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\x00\"")]
    MissingMagic,
    #[error("malformed runtime.Unknown envelope")]
    Envelope(#[source] prost::DecodeError),
    #[error("protobuf envelope has no apiVersion or kind")]
    MissingTypeMeta,
    #[error(
        "unsupported protobuf envelope encoding (contentEncoding {content_encoding:?}, contentType {content_type:?})"
    )]
    UnsupportedEncoding {
        content_encoding: String,
        content_type: String,
    },
    /// The server should answer 415 Unsupported Media Type.
    #[error("protobuf is not supported for {kind} in {api_version}; send JSON")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("malformed {kind} message")]
    Message {
        kind: String,
        #[source]
        source: prost::DecodeError,
    },
    /// A set field that this module does not convert (see the module docs).
    #[error("field {field} is not supported in protobuf bodies; send JSON")]
    UnsupportedField { field: &'static str },
    #[error("invalid {field}: {reason}")]
    InvalidValue { field: &'static str, reason: String },
}

type Result<T, E = ProtoError> = std::result::Result<T, E>;

/// Decodes a `k8s\0`-prefixed protobuf body into the equivalent JSON object, including
/// `kind` and `apiVersion`.
pub(crate) fn decode(body: &[u8]) -> Result<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::MissingMagic)?;
    let unknown = Unknown::decode(envelope).map_err(ProtoError::Envelope)?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta);
    }
    let content_encoding = unknown.content_encoding.unwrap_or_default();
    let content_type = unknown.content_type.unwrap_or_default();
    if !content_encoding.is_empty() || !(content_type.is_empty() || content_type == CONTENT_TYPE) {
        return Err(ProtoError::UnsupportedEncoding {
            content_encoding,
            content_type,
        });
    }
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();

    let body = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => core_v1::secret(&message(raw, &kind)?)?,
        ("v1", "ConfigMap") => core_v1::config_map(&message(raw, &kind)?)?,
        ("v1", "Namespace") => core_v1::namespace(&message(raw, &kind)?)?,
        ("v1", "Service") => core_v1::service(&message(raw, &kind)?)?,
        ("v1", "ServiceAccount") => core_v1::service_account(&message(raw, &kind)?)?,
        ("apps/v1", "Deployment") => apps_v1::deployment(&message(raw, &kind)?)?,
        ("batch/v1", "Job") => batch_v1::job(&message(raw, &kind)?)?,
        ("batch/v1", "CronJob") => batch_v1::cron_job(&message(raw, &kind)?)?,
        ("networking.k8s.io/v1", "Ingress") => networking_v1::ingress(&message(raw, &kind)?)?,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            authorization_v1::self_subject_access_review(&message(raw, &kind)?)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            authorization_v1::self_subject_rules_review(&message(raw, &kind)?)?
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            let r: authz::SubjectAccessReview = message(raw, &kind)?;
            authorization_v1::subject_access_review(&r.metadata, &r.spec)?
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            let r: authz::LocalSubjectAccessReview = message(raw, &kind)?;
            authorization_v1::subject_access_review(&r.metadata, &r.spec)?
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            authentication_v1::token_request(&message(raw, &kind)?)?
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            let r: authn::SelfSubjectReview = message(raw, &kind)?;
            authentication_v1::self_subject_review(&r.metadata)?
        }
        ("authentication.k8s.io/v1beta1", "SelfSubjectReview") => {
            let r: authn_beta::SelfSubjectReview = message(raw, &kind)?;
            authentication_v1::self_subject_review(&r.metadata)?
        }
        ("authentication.k8s.io/v1alpha1", "SelfSubjectReview") => {
            let r: authn_alpha::SelfSubjectReview = message(raw, &kind)?;
            authentication_v1::self_subject_review(&r.metadata)?
        }
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            certificates_v1::certificate_signing_request(&message(raw, &kind)?)?
        }
        ("rbac.authorization.k8s.io/v1", "Role") => rbac_v1::role(&message(raw, &kind)?)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => rbac_v1::cluster_role(&message(raw, &kind)?)?,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            let b: rbac::RoleBinding = message(raw, &kind)?;
            rbac_v1::binding(&b.metadata, &b.subjects, &b.role_ref)?
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            let b: rbac::ClusterRoleBinding = message(raw, &kind)?;
            rbac_v1::binding(&b.metadata, &b.subjects, &b.role_ref)?
        }
        _ => return Err(ProtoError::UnsupportedKind { api_version, kind }),
    };

    // Go's TypeMeta puts kind before apiVersion.
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    out.extend(body);
    Ok(Value::Object(out))
}

fn message<M: Message + Default>(raw: &[u8], kind: &str) -> Result<M> {
    M::decode(raw).map_err(|source| ProtoError::Message {
        kind: kind.to_string(),
        source,
    })
}

/// Builds one JSON object with Go `encoding/json` field semantics.
#[derive(Default)]
struct Json(Map<String, Value>);

impl Json {
    fn put(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }

    /// `string` with `omitempty`.
    fn str(&mut self, key: &str, v: &Option<String>) {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            self.put(key, Value::String(v.to_string()));
        }
    }

    /// `string` without `omitempty`: always present.
    fn str_req(&mut self, key: &str, v: &Option<String>) {
        self.put(key, Value::String(v.clone().unwrap_or_default()));
    }

    /// `*string`: present when set.
    fn str_ptr(&mut self, key: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.put(key, Value::String(v.clone()));
        }
    }

    /// Integer with `omitempty`.
    fn int<I: Copy + Into<i64>>(&mut self, key: &str, v: Option<I>) {
        if let Some(v) = v.map(Into::into).filter(|v| *v != 0) {
            self.put(key, v.into());
        }
    }

    /// Integer without `omitempty`.
    fn int_req<I: Copy + Into<i64>>(&mut self, key: &str, v: Option<I>) {
        self.put(key, v.map(Into::into).unwrap_or(0).into());
    }

    /// `*int32` / `*int64`.
    fn int_ptr<I: Copy + Into<i64>>(&mut self, key: &str, v: Option<I>) {
        if let Some(v) = v {
            self.put(key, v.into().into());
        }
    }

    /// `*int32` / `*int64` without `omitempty`: `null` when nil.
    fn int_ptr_req<I: Copy + Into<i64>>(&mut self, key: &str, v: Option<I>) {
        self.put(key, v.map_or(Value::Null, |v| v.into().into()));
    }

    /// `bool` with `omitempty`.
    fn bool(&mut self, key: &str, v: Option<bool>) {
        if v == Some(true) {
            self.put(key, Value::Bool(true));
        }
    }

    /// `*bool`.
    fn bool_ptr(&mut self, key: &str, v: Option<bool>) {
        if let Some(v) = v {
            self.put(key, Value::Bool(v));
        }
    }

    /// `[]string` with `omitempty`.
    fn strs(&mut self, key: &str, v: &[String]) {
        if !v.is_empty() {
            self.put(key, v.iter().cloned().map(Value::String).collect());
        }
    }

    /// `[]string` without `omitempty`: protobuf cannot tell nil from empty, and Go
    /// decodes both as nil, which JSON writes as `null`.
    fn strs_req(&mut self, key: &str, v: &[String]) {
        if v.is_empty() {
            self.put(key, Value::Null);
        } else {
            self.strs(key, v);
        }
    }

    /// `map[string]string` with `omitempty`.
    fn map(&mut self, key: &str, v: &BTreeMap<String, String>) {
        if !v.is_empty() {
            let m = v
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            self.put(key, Value::Object(m));
        }
    }

    /// `map[string][]byte` with `omitempty`: values in base64.
    fn bytes_map(&mut self, key: &str, v: &BTreeMap<String, Vec<u8>>) {
        if !v.is_empty() {
            let m = v
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(BASE64.encode(v))))
                .collect();
            self.put(key, Value::Object(m));
        }
    }

    /// `[]byte` with `omitempty`: standard base64.
    fn bytes(&mut self, key: &str, v: &Option<Vec<u8>>) {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            self.put(key, Value::String(BASE64.encode(v)));
        }
    }

    /// `[]byte` without `omitempty`: base64 when set (Go decodes a present, empty field
    /// as an empty slice, `""`), `null` when absent (nil).
    fn bytes_req(&mut self, key: &str, v: &Option<Vec<u8>>) {
        let value = v
            .as_deref()
            .map_or(Value::Null, |v| Value::String(BASE64.encode(v)));
        self.put(key, value);
    }

    /// `map[string]ExtraValue` (ExtraValue being `[]string`) with `omitempty`, the
    /// authenticator's extra user attributes; `items` reads one value's strings. An empty
    /// value is `null`, as Go writes a nil slice.
    fn extra<X>(&mut self, key: &str, v: &BTreeMap<String, X>, items: impl Fn(&X) -> &[String]) {
        if !v.is_empty() {
            let m = v
                .iter()
                .map(|(k, x)| {
                    let items = items(x);
                    let value = if items.is_empty() {
                        Value::Null
                    } else {
                        items.iter().cloned().map(Value::String).collect()
                    };
                    (k.clone(), value)
                })
                .collect();
            self.put(key, Value::Object(m));
        }
    }

    /// `map[string]resource.Quantity` with `omitempty`.
    fn quantities(&mut self, key: &str, v: &BTreeMap<String, Quantity>) {
        if !v.is_empty() {
            let m = v.iter().map(|(k, q)| (k.clone(), quantity(q))).collect();
            self.put(key, Value::Object(m));
        }
    }

    /// Slice of structs with `omitempty`.
    fn list<T>(&mut self, key: &str, v: &[T], f: impl Fn(&T) -> Result<Value>) -> Result<()> {
        if !v.is_empty() {
            let items = v.iter().map(f).collect::<Result<Vec<_>>>()?;
            self.put(key, Value::Array(items));
        }
        Ok(())
    }

    /// Slice of structs without `omitempty` (`null` when empty, as Go writes nil).
    fn list_req<T>(&mut self, key: &str, v: &[T], f: impl Fn(&T) -> Result<Value>) -> Result<()> {
        if v.is_empty() {
            self.put(key, Value::Null);
            Ok(())
        } else {
            self.list(key, v, f)
        }
    }

    /// Pointer to a struct: present when set.
    fn ptr<T>(&mut self, key: &str, v: &Option<T>, f: impl Fn(&T) -> Result<Value>) -> Result<()> {
        if let Some(v) = v {
            let value = f(v)?;
            self.put(key, value);
        }
        Ok(())
    }

    /// Pointer to a struct without `omitempty`: `null` when nil.
    fn ptr_req<T>(&mut self, key: &str, v: &Option<T>, f: impl Fn(&T) -> Result<Value>) -> Result<()> {
        let value = match v {
            Some(v) => f(v)?,
            None => Value::Null,
        };
        self.put(key, value);
        Ok(())
    }

    /// Non-pointer struct: always present (`omitempty` has no effect on structs in Go).
    fn object<T: Default>(
        &mut self,
        key: &str,
        v: &Option<T>,
        f: impl Fn(&T) -> Result<Value>,
    ) -> Result<()> {
        let value = match v {
            Some(v) => f(v)?,
            None => f(&T::default())?,
        };
        self.put(key, value);
        Ok(())
    }

    fn done(self) -> Result<Value> {
        Ok(Value::Object(self.0))
    }
}

/// Fails when a field this module does not convert is set.
fn reject(set: bool, field: &'static str) -> Result<()> {
    if set {
        Err(ProtoError::UnsupportedField { field })
    } else {
        Ok(())
    }
}

fn quantity(q: &Quantity) -> Value {
    // A zero Quantity marshals as "0" in Go.
    match q.string.as_deref() {
        Some(s) if !s.is_empty() => Value::String(s.to_string()),
        _ => Value::String("0".to_string()),
    }
}

fn int_or_string(v: &IntOrString) -> Result<Value> {
    // type 1 is String, anything else Int (Go's zero value).
    Ok(if v.r#type == Some(1) {
        Value::String(v.str_val.clone().unwrap_or_default())
    } else {
        v.int_val.unwrap_or(0).into()
    })
}

/// metav1.Time: RFC 3339 in UTC with second precision; the zero time is `null`.
fn time(t: &meta::Time) -> Result<Value> {
    let seconds = t.seconds.unwrap_or(0);
    let nanos = t.nanos.unwrap_or(0);
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let at =
        chrono::DateTime::from_timestamp(seconds, 0).ok_or_else(|| ProtoError::InvalidValue {
            field: "metav1.Time",
            reason: format!("{seconds} seconds is out of range"),
        })?;
    Ok(Value::String(
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

/// Fixtures the per-group tests share: protobuf envelopes as client-go writes them.
#[cfg(test)]
mod fixtures {
    use std::collections::BTreeMap;

    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use prost::Message;
    use serde_json::Value;

    use super::{MAGIC, decode};

    pub(super) fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    pub(super) fn map<V: Clone>(pairs: &[(&str, V)]) -> BTreeMap<String, V> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    pub(super) fn qty(v: &str) -> Quantity {
        Quantity { string: s(v) }
    }

    /// Wraps a message the way client-go's protobuf serializer does.
    pub(super) fn envelope<M: Message>(api_version: &str, kind: &str, m: &M) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s(api_version),
                kind: s(kind),
            }),
            raw: Some(m.encode_to_vec()),
            content_encoding: s(""),
            content_type: s(""),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    pub(super) fn meta_named(name: &str) -> Option<meta::ObjectMeta> {
        Some(meta::ObjectMeta {
            name: s(name),
            ..Default::default()
        })
    }

    pub(super) fn decoded<M: Message>(api_version: &str, kind: &str, m: &M) -> Value {
        match decode(&envelope(api_version, kind, m)) {
            Ok(v) => v,
            Err(e) => panic!("decode failed: {e:?}"),
        }
    }

    pub(super) fn fixture(bytes: &[u8]) -> Value {
        match decode(bytes) {
            Ok(v) => v,
            Err(e) => panic!("fixture failed to decode: {e:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{envelope, fixture, s};
    use super::*;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use serde_json::json;

    #[test]
    fn rejects_body_without_magic() {
        assert!(matches!(
            decode(b"{\"kind\":\"Secret\"}"),
            Err(ProtoError::MissingMagic)
        ));
        assert!(matches!(decode(b""), Err(ProtoError::MissingMagic)));
    }

    #[test]
    fn rejects_truncated_envelope() {
        let mut body = envelope("v1", "Secret", &core::Secret::default());
        body.truncate(10);
        assert!(matches!(decode(&body), Err(ProtoError::Envelope(_))));
    }

    #[test]
    fn rejects_malformed_inner_message() {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Secret"),
            }),
            raw: Some(vec![0x0a, 0x05, 0x01]),
            ..Default::default()
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert!(matches!(decode(&body), Err(ProtoError::Message { kind, .. }) if kind == "Secret"));
    }

    #[test]
    fn rejects_missing_type_meta_and_foreign_encodings() {
        let mut body = MAGIC.to_vec();
        body.extend(Unknown::default().encode_to_vec());
        assert!(matches!(decode(&body), Err(ProtoError::MissingTypeMeta)));

        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: s("v1"),
                kind: s("Secret"),
            }),
            raw: Some(vec![]),
            content_encoding: s("gzip"),
            content_type: s(""),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert!(matches!(
            decode(&body),
            Err(ProtoError::UnsupportedEncoding { content_encoding, .. }) if content_encoding == "gzip"
        ));
    }

    #[test]
    fn unknown_kind_is_reported_with_its_type() {
        // `kubectl create quota q --hard=pods=10,cpu=2`
        let err = decode(include_bytes!("testdata/quota.bin"));
        assert!(
            matches!(
                err,
                Err(ProtoError::UnsupportedKind { ref api_version, ref kind })
                    if api_version == "v1" && kind == "ResourceQuota"
            ),
            "{err:?}"
        );
    }

    #[test]
    fn kubectl_fills_every_go_field_and_empty_ones_are_omitted() {
        // Go writes all non-pointer fields, so the captured ObjectMeta carries empty
        // strings and a zero creationTimestamp; none of them may leak into the JSON.
        let body = include_bytes!("testdata/secret_generic.bin");
        let unknown = Unknown::decode(&body[MAGIC.len()..]).unwrap_or_default();
        let secret =
            core::Secret::decode(unknown.raw.unwrap_or_default().as_slice()).unwrap_or_default();
        let meta = secret.metadata.unwrap_or_default();
        assert_eq!(meta.namespace.as_deref(), Some(""));
        assert_eq!(meta.generation, Some(0));
        assert!(meta.creation_timestamp.is_some());
        assert_eq!(secret.r#type.as_deref(), Some(""));
        let v = fixture(body);
        assert_eq!(
            v["metadata"],
            json!({"name": "s", "creationTimestamp": null})
        );
        assert!(v.get("type").is_none());
    }
}
