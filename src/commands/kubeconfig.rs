//! Merging the `flotilla` cluster, user and context into a kubeconfig file, and undoing it.
//!
//! The file is merged, never clobbered: every other cluster, user, context and key stays as
//! it was. A file that is not a kubeconfig (bad YAML, lists that are not lists) is refused
//! with an error naming it, and left untouched. `merge` remembers the current-context it
//! replaced (in the data dir), and `restore` puts it back once the cluster stops, unless
//! the user switched context in the meantime.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

/// The name of Flotilla's cluster, user and context entries.
pub(crate) const NAME: &str = "flotilla";

/// What a kubeconfig's current-context was before `merge` made it `flotilla`.
#[derive(Debug, Serialize, Deserialize)]
struct Previous {
    kubeconfig: PathBuf,
    context: Option<String>,
}

/// Where the data dir remembers the replaced current-context.
fn previous_path(data_dir: &Path) -> PathBuf {
    data_dir.join("kubeconfig-previous-context.json")
}

fn named(name: &str, key: &str, body: Value) -> Value {
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert(key.into(), body);
    Value::Mapping(m)
}

const LISTS: [(&str, &str); 3] = [("clusters", "cluster"), ("users", "user"), ("contexts", "context")];

/// Reads and checks the kubeconfig at `path` (None: missing or empty).
fn load(path: &Path) -> anyhow::Result<Option<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading kubeconfig {}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: String| anyhow::anyhow!("kubeconfig {} is malformed: {why}; fix or move it (Flotilla left it unchanged)", path.display());
    let doc: Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let Some(m) = doc.as_mapping() else { return Err(bad("it is not a YAML mapping".into())) };
    for (list, _) in LISTS {
        match m.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(items)) => {
                if !items.iter().all(|i| i.get("name").is_some_and(Value::is_string)) {
                    return Err(bad(format!("an entry of `{list}` has no name")));
                }
            }
            Some(_) => return Err(bad(format!("`{list}` is not a list"))),
        }
    }
    if !matches!(m.get("current-context"), None | Some(Value::Null) | Some(Value::String(_))) {
        return Err(bad("`current-context` is not a string".into()));
    }
    Ok(Some(doc))
}

/// Fails, naming the file, if the kubeconfig exists but could not be merged into.
pub(crate) fn check(path: &Path) -> anyhow::Result<()> {
    load(path).map(drop)
}

fn current_context(doc: &Value) -> Option<String> {
    doc.get("current-context").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_string)
}

/// Writes `doc` to `path` atomically, readable by its owner only.
fn save(path: &Path, doc: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("flotilla-tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_yaml::to_string(doc)?.as_bytes())?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Adds (or replaces) cluster, user and context `flotilla` and makes the context current,
/// remembering in `data_dir` the current-context it replaced.
pub(crate) fn merge(path: &Path, data_dir: &Path, server: &str, ca_pem: &str, token: &str) -> anyhow::Result<()> {
    let mut doc = match load(path)? {
        Some(doc) => doc,
        None => serde_yaml::from_str("apiVersion: v1\nkind: Config\npreferences: {}\n")?,
    };
    let previous = current_context(&doc);
    if previous.as_deref() != Some(NAME) {
        // A restart while `flotilla` is current keeps the earlier record.
        let record = Previous { kubeconfig: std::path::absolute(path)?, context: previous };
        std::fs::write(previous_path(data_dir), serde_json::to_vec(&record)?)?;
    }
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let cluster: Value = serde_yaml::from_str(&format!("server: {server}\ncertificate-authority-data: {ca}\n"))?;
    let user: Value = serde_yaml::from_str(&format!("token: {token}\n"))?;
    let context: Value = serde_yaml::from_str(&format!("cluster: {NAME}\nuser: {NAME}\nnamespace: default\n"))?;
    let m = doc.as_mapping_mut().expect("checked by load");
    for ((list, item), body) in LISTS.into_iter().zip([cluster, user, context]) {
        let entry = m.entry(list.into()).or_insert(Value::Null);
        if !entry.is_sequence() {
            *entry = Value::Sequence(vec![]);
        }
        let seq = entry.as_sequence_mut().expect("sequence");
        let new = named(NAME, item, body);
        match seq.iter_mut().find(|e| e.get("name").and_then(Value::as_str) == Some(NAME)) {
            Some(old) => *old = new,
            None => seq.push(new),
        }
    }
    m.insert("current-context".into(), NAME.into());
    save(path, &doc)
}

/// The kubeconfig `merge` wrote to, while it remembers a context to restore.
pub(crate) fn merged_into(data_dir: &Path) -> Option<PathBuf> {
    let record: Previous = serde_json::from_slice(&std::fs::read(previous_path(data_dir)).ok()?).ok()?;
    Some(record.kubeconfig)
}

/// The kubeconfig's current-context ("" when it has none).
pub(crate) fn current(path: &Path) -> anyhow::Result<String> {
    Ok(load(path)?.as_ref().and_then(current_context).unwrap_or_default())
}

/// Once the cluster has stopped: makes the context `merge` replaced current again, if
/// `flotilla` is still the current one (a user who switched context meanwhile keeps their
/// choice). Returns the context restored, if any. Idempotent.
pub(crate) fn restore(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let record_path = previous_path(data_dir);
    let Ok(bytes) = std::fs::read(&record_path) else { return Ok(None) };
    let record: Previous = serde_json::from_slice(&bytes).with_context(|| format!("reading {}", record_path.display()))?;
    let mut restored = None;
    if let Some(mut doc) = load(&record.kubeconfig)?
        && current_context(&doc).as_deref() == Some(NAME)
    {
        let m = doc.as_mapping_mut().expect("checked by load");
        match &record.context {
            Some(c) => {
                m.insert("current-context".into(), c.as_str().into());
            }
            None => {
                m.remove("current-context");
            }
        }
        save(&record.kubeconfig, &doc)?;
        restored = Some(record.context.clone().unwrap_or_default());
    }
    std::fs::remove_file(&record_path)?;
    Ok(restored)
}

/// Removes the `flotilla` cluster, user and context from the kubeconfig (and the
/// current-context if it names `flotilla`). Returns whether anything was removed.
pub(crate) fn remove(path: &Path) -> anyhow::Result<bool> {
    let Some(mut doc) = load(path)? else { return Ok(false) };
    let current = current_context(&doc);
    let m = doc.as_mapping_mut().expect("checked by load");
    let mut changed = false;
    for (list, _) in LISTS {
        if let Some(Value::Sequence(seq)) = m.get_mut(list) {
            let before = seq.len();
            seq.retain(|e| e.get("name").and_then(Value::as_str) != Some(NAME));
            changed |= seq.len() != before;
        }
    }
    if current.as_deref() == Some(NAME) {
        m.remove("current-context");
        changed = true;
    }
    if changed {
        save(path, &doc)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: 'https://prod:6443'}
users:
- name: admin
  user: {token: abc}
contexts:
- name: prod
  context: {cluster: prod, user: admin}
current-context: prod
preferences: {colors: true}
";

    fn parsed(path: &Path) -> Value {
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn merge_keeps_other_entries_and_restore_brings_back_the_previous_context() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("config");
        std::fs::write(&kc, OTHER).unwrap();
        merge(&kc, dir.path(), "https://127.0.0.1:1", "CA", "tok").unwrap();
        let doc = parsed(&kc);
        assert_eq!(doc["current-context"], "flotilla");
        assert_eq!(doc["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(doc["preferences"]["colors"], true);
        // A second start (a restart) does not forget the context from before the first.
        merge(&kc, dir.path(), "https://127.0.0.1:2", "CA", "tok").unwrap();
        assert_eq!(parsed(&kc)["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(restore(dir.path()).unwrap().as_deref(), Some("prod"));
        let mut doc = parsed(&kc);
        assert_eq!(doc["current-context"], "prod");
        assert!(remove(&kc).unwrap());
        doc = parsed(&kc);
        assert_eq!(doc, serde_yaml::from_str::<Value>(OTHER).unwrap(), "back to what it was");
        assert_eq!(restore(dir.path()).unwrap(), None, "nothing left to restore");
    }

    #[test]
    fn restore_leaves_a_context_the_user_chose_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("config");
        std::fs::write(&kc, OTHER).unwrap();
        merge(&kc, dir.path(), "https://127.0.0.1:1", "CA", "tok").unwrap();
        let text = std::fs::read_to_string(&kc).unwrap().replace("current-context: flotilla", "current-context: mine");
        std::fs::write(&kc, text).unwrap();
        assert_eq!(restore(dir.path()).unwrap(), None);
        assert_eq!(parsed(&kc)["current-context"], "mine");
    }

    #[test]
    fn a_fresh_kubeconfig_loses_its_current_context_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("sub/config");
        merge(&kc, dir.path(), "https://127.0.0.1:1", "CA", "tok").unwrap();
        assert_eq!(restore(dir.path()).unwrap().as_deref(), Some(""));
        assert!(parsed(&kc).get("current-context").is_none());
    }

    #[test]
    fn a_malformed_kubeconfig_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("config");
        for bad in ["clusters: [unclosed", "- a\n- b\n", "clusters: {a: 1}\n", "contexts:\n- context: {}\n", "current-context: [x]\n"] {
            std::fs::write(&kc, bad).unwrap();
            let err = merge(&kc, dir.path(), "https://127.0.0.1:1", "CA", "tok").unwrap_err().to_string();
            assert!(err.contains("malformed") && err.contains("config"), "{err}");
            assert_eq!(std::fs::read_to_string(&kc).unwrap(), bad);
        }
    }
}
