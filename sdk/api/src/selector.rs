//! TEMPORARY STUB (replaced by the validation helper's delivery).
use serde_json::{Map, Value};
#[derive(Debug)]
pub struct SelectorError(pub String);
impl std::fmt::Display for SelectorError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
pub struct LabelSelector(Vec<(String, String)>);
impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        Ok(LabelSelector(s.split(',').filter_map(|p| p.split_once('=')).map(|(a, b)| (a.trim().to_string(), b.trim().to_string())).collect()))
    }
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.0.iter().all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(v.as_str()))
    }
}
pub struct FieldSelector(Vec<(String, String)>);
impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        Ok(FieldSelector(s.split(',').filter_map(|p| p.split_once('=')).map(|(a, b)| (a.trim_end_matches('=').to_string(), b.trim_start_matches('=').to_string())).collect()))
    }
    pub fn fields(&self) -> impl Iterator<Item = &str> { self.0.iter().map(|(a, _)| a.as_str()) }
    pub fn supported_fields(_kind: &str) -> &'static [&'static str] { &["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "involvedObject.name", "involvedObject.namespace", "involvedObject.uid", "involvedObject.kind"] }
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, v)| { let p = format!("/{}", k.replace('.', "/")); obj.pointer(&p).and_then(Value::as_str) == Some(v.as_str()) })
    }
}
