//! TEMPORARY STUB (replaced by the validation helper's delivery).
use serde_json::Value;
pub struct Cause { pub field: String, pub reason: &'static str, pub message: String }
pub fn invalid_message(kind: &str, name: &str, causes: &[Cause]) -> String {
    format!("{kind} \"{name}\" is invalid: {}", causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", "))
}
pub fn validate_create(_group: &str, _kind: &str, _namespaced: bool, obj: &Value) -> Vec<Cause> {
    if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() { return vec![Cause { field: "metadata.name".into(), reason: "FieldValueRequired", message: "Required value: name or generateName is required".into() }]; }
    vec![]
}
pub fn validate_update(_group: &str, _kind: &str, _old: &Value, _new: &Value) -> Vec<Cause> { vec![] }
