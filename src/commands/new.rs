//! `flotilla new http|job NAME`: scaffolds a guest project from the SDK's templates
//! (sdk/guest/templates), with the SDK's sources vendored at NAME/vendor/flotilla-guest so
//! the project builds with no path back to a Flotilla checkout (see
//! sdk/guest/templates/README.md). Templates and SDK are embedded in the binary.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

macro_rules! embed {
    ($($path:literal),* $(,)?) => { &[$(($path, include_str!(concat!("../../sdk/guest/", $path)))),*] };
}

/// The SDK files vendored into a project (sdk/guest/…).
pub(crate) const SDK_FILES: &[(&str, &str)] = embed!(
    "Cargo.toml", "README.md",
    "src/cli.rs", "src/client.rs", "src/env.rs", "src/fs.rs", "src/http.rs", "src/http/router.rs", "src/http/serve.rs",
    "src/lib.rs", "src/log.rs", "src/url.rs",
);

/// The template files (sdk/guest/templates/KIND/…).
const HTTP_FILES: &[(&str, &str)] = embed!(
    "templates/http/.gitignore", "templates/http/Cargo.toml", "templates/http/manifest.yaml", "templates/http/src/lib.rs",
);
const JOB_FILES: &[(&str, &str)] = embed!(
    "templates/job/.gitignore", "templates/job/Cargo.toml", "templates/job/manifest.yaml", "templates/job/src/main.rs",
);

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Kind {
    /// An HTTP component (wasi:http handler) with a Deployment and a Service
    Http,
    /// A command component with a Job
    Job,
}

/// Create a guest project: a Rust crate using the Flotilla guest SDK and its manifest
///
/// Writes ./NAME: Cargo.toml, src/, manifest.yaml (http: a ConfigMap, a Deployment and a
/// Service; job: a Job) and the SDK's sources at vendor/flotilla-guest. Build it with
/// `flotilla build NAME`, then `flotilla push NAME/target/wasm/NAME.wasm NAME:v1` and
/// `kubectl apply -f NAME/manifest.yaml`.
#[derive(Args, Debug)]
pub(crate) struct NewCommand {
    /// What to scaffold
    pub kind: Kind,
    /// Project name: a DNS label starting with a letter (also the crate, image and object name)
    pub name: String,
    /// Registry host the manifest's image names [default: the API address of the
    /// kubeconfig's current context, else 127.0.0.1:6443]
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// Directory to create the project in [default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// A DNS label that starts with a letter: a valid object name and crate name.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && *b.last().expect("non-empty") != b'-'
}

/// HOST:PORT of the kubeconfig's current cluster.
fn registry_from_kubeconfig() -> Option<String> {
    let path = std::env::var("KUBECONFIG")
        .ok()
        .and_then(|k| k.split(':').find(|p| !p.is_empty()).map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let current = doc["current-context"].as_str()?;
    let find = |list: &str, name: &str| doc[list].as_sequence()?.iter().find(|e| e["name"].as_str() == Some(name)).cloned();
    let context = find("contexts", current)?;
    let cluster = find("clusters", context["context"]["cluster"].as_str()?)?;
    let server = cluster["cluster"]["server"].as_str()?;
    Some(server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/').to_string())
}

/// Writes the project for `kind` as `name` into `root/name`.
pub(crate) fn scaffold(root: &Path, kind: Kind, name: &str, registry: &str) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(valid_name(name), "{name:?} is not a valid project name: use a DNS label that starts with a letter (a-z, 0-9, -; at most 63)");
    let dir = root.join(name);
    anyhow::ensure!(!dir.exists(), "{} exists", dir.display());
    let (prefix, files) = match kind {
        Kind::Http => ("templates/http/", HTTP_FILES),
        Kind::Job => ("templates/job/", JOB_FILES),
    };
    let fill = |text: &str| text.replace("{{name}}", name).replace("{{sdk_path}}", "vendor/flotilla-guest").replace("{{registry}}", registry);
    for (path, text) in files {
        let out = dir.join(path.strip_prefix(prefix).expect("template path"));
        std::fs::create_dir_all(out.parent().expect("parent"))?;
        std::fs::write(&out, fill(text))?;
    }
    for (path, text) in SDK_FILES {
        let out = dir.join("vendor/flotilla-guest").join(path);
        std::fs::create_dir_all(out.parent().expect("parent"))?;
        std::fs::write(&out, text)?;
    }
    Ok(dir)
}

impl NewCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let registry = self.registry.clone().or_else(registry_from_kubeconfig).unwrap_or_else(|| "127.0.0.1:6443".to_string());
        let root = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()?,
        };
        let dir = scaffold(&root, self.kind, &self.name, &registry)?;
        let name = &self.name;
        println!("created {} ({:?}, image {registry}/{name}:v1)", dir.display(), self.kind);
        println!("next:");
        println!("  flotilla build {name}");
        println!("  flotilla push {name}/target/wasm/{name}.wasm {name}:v1");
        println!("  kubectl apply -f {name}/manifest.yaml");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of sdk/guest/src and of the templates is embedded (a new file there
    /// must be added to the lists above).
    #[test]
    fn every_sdk_and_template_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/guest");
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut on_disk = Vec::new();
        walk(&root.join("src"), &root, &mut on_disk);
        walk(&root.join("templates/http"), &root, &mut on_disk);
        walk(&root.join("templates/job"), &root, &mut on_disk);
        let embedded: Vec<&str> = SDK_FILES.iter().chain(HTTP_FILES).chain(JOB_FILES).map(|(p, _)| *p).collect();
        for f in &on_disk {
            assert!(embedded.contains(&f.as_str()), "sdk/guest/{f} is not embedded in `flotilla new`");
        }
    }

    #[test]
    fn scaffolds_fill_placeholders_and_vendor_the_sdk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = scaffold(tmp.path(), Kind::Http, "demo", "10.0.0.1:6443").unwrap();
        let manifest = std::fs::read_to_string(dir.join("manifest.yaml")).unwrap();
        assert!(manifest.contains("image: 10.0.0.1:6443/demo:v1") && !manifest.contains("{{"), "{manifest}");
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"demo\"") && cargo.contains("path = \"vendor/flotilla-guest\""));
        assert!(dir.join("vendor/flotilla-guest/src/http/router.rs").is_file());
        assert!(scaffold(tmp.path(), Kind::Job, "demo", "r").unwrap_err().to_string().contains("exists"));
        for bad in ["1abc", "Abc", "a_b", "a-", ""] {
            assert!(scaffold(tmp.path(), Kind::Job, bad, "r").is_err(), "{bad}");
        }
    }
}
