//! Writing or merging the `flotilla` cluster, user and context into a kubeconfig file.

use std::path::Path;

use base64::Engine as _;
use serde_yaml::{Mapping, Value};

fn named(name: &str, key: &str, body: Value) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert(key.into(), body);
    Value::Mapping(m)
}

fn upsert(list: &mut Value, entry: Value) {
    if !list.is_sequence() {
        *list = Value::Sequence(vec![]);
    }
    let seq = list.as_sequence_mut().expect("sequence");
    let name = entry.get("name").cloned();
    seq.retain(|e| e.get("name") != name.as_ref());
    seq.push(entry);
}

/// Adds (or replaces) cluster, user and context `flotilla` and makes the context current.
pub(crate) fn merge(path: &Path, server: &str, ca_pem: &str, token: &str) -> anyhow::Result<()> {
    let mut doc: Value = match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => serde_yaml::from_str(&s)?,
        _ => serde_yaml::from_str("apiVersion: v1\nkind: Config\npreferences: {}\n")?,
    };
    if !doc.is_mapping() {
        anyhow::bail!("{} is not a kubeconfig mapping", path.display());
    }
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let cluster: Value = serde_yaml::from_str(&format!("server: {server}\ncertificate-authority-data: {ca}\n"))?;
    let user: Value = serde_yaml::from_str(&format!("token: {token}\n"))?;
    let context: Value = serde_yaml::from_str("cluster: flotilla\nuser: flotilla\nnamespace: default\n")?;
    let m = doc.as_mapping_mut().expect("mapping");
    for (key, item, body) in [("clusters", "cluster", cluster), ("users", "user", user), ("contexts", "context", context)] {
        let list = m.entry(key.into()).or_insert(Value::Null);
        upsert(list, named("flotilla", item, body));
    }
    m.insert("current-context".into(), "flotilla".into());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("flotilla-tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_yaml::to_string(&doc)?.as_bytes())?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
