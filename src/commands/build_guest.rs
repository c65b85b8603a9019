//! `flotilla build [DIR]`: builds a guest project (one `flotilla new` wrote, or any crate
//! with a `[package.metadata.flotilla-guest]` table) into DIR/target/wasm/NAME.wasm with
//! the guest toolchain scripts/build-guests.sh uses: Debian's rustc-web with
//! `-Zbuild-std`, the target and WASI adapter the crate's metadata names, and a
//! crt1-command.o that runs constructors (embedded: guests/support/crt1-command.s).
//!
//! The standard library is built once per machine, in the build dir
//! ($FLOTILLA_GUEST_BUILD_DIR, else $XDG_CACHE_HOME/flotilla/guest-build or
//! ~/.cache/flotilla/guest-build); a project then builds in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::Args;

const CRT1_COMMAND: &str = include_str!("../../guests/support/crt1-command.s");

/// Build a guest project into a wasm component
///
/// Reads DIR/Cargo.toml's [package.metadata.flotilla-guest] (target, adapter), builds
/// with Debian's rustc-web toolchain (install it with scripts/build-guests.sh, which
/// apt-gets it, or the apt-get line this command prints when it is missing) and writes
/// DIR/target/wasm/NAME.wasm.
#[derive(Args, Debug)]
pub(crate) struct BuildCommand {
    /// The project directory [default: the current directory]
    pub dir: Option<PathBuf>,
}

/// The value of `key = "..."` in `[table]` of a Cargo.toml (a line-based read, enough for
/// the templates' and guests' manifests).
fn toml_value(text: &str, table: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{table}]");
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn build_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("FLOTILLA_GUEST_BUILD_DIR").filter(|v| !v.is_empty()) {
        return Ok(std::path::absolute(PathBuf::from(d))?);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("flotilla/guest-build"));
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set; set FLOTILLA_GUEST_BUILD_DIR"))?;
    Ok(PathBuf::from(home).join(".cache/flotilla/guest-build"))
}

/// llvm-mc of the LLVM rust-lld belongs to (the guest toolchain's).
fn llvm_mc() -> Option<PathBuf> {
    let lld = std::fs::read_link("/usr/bin/rust-lld").ok()?;
    let major = lld.to_string_lossy().rsplit("lld-").next()?.to_string();
    let mc = PathBuf::from(format!("/usr/bin/llvm-mc-{major}"));
    mc.is_file().then_some(mc)
}

impl BuildCommand {
    pub(crate) fn execute(self) -> anyhow::Result<()> {
        let dir = std::path::absolute(self.dir.clone().unwrap_or_else(|| PathBuf::from(".")))?;
        let manifest_path = dir.join("Cargo.toml");
        let manifest = std::fs::read_to_string(&manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?;
        let target = toml_value(&manifest, "package.metadata.flotilla-guest", "target")
            .ok_or_else(|| anyhow::anyhow!("{} has no [package.metadata.flotilla-guest] target", manifest_path.display()))?;
        let adapter = toml_value(&manifest, "package.metadata.flotilla-guest", "adapter");
        let package = toml_value(&manifest, "package", "name").ok_or_else(|| anyhow::anyhow!("{} has no package name", manifest_path.display()))?;
        let cdylib = manifest.lines().any(|l| l.trim().starts_with("crate-type") && l.contains("cdylib"));
        let artifact = if cdylib { package.replace('-', "_") } else { package.clone() };

        let mc = llvm_mc();
        let ready = ["/usr/bin/rustc", "/usr/bin/cargo", "/usr/lib/wasm32-wasi/libc.a"].iter().all(|p| Path::new(p).exists())
            && Path::new("/usr/lib/rustlib/src/rust/library").is_dir()
            && mc.is_some();
        anyhow::ensure!(
            ready,
            "the guest toolchain is missing: install Debian's rustc-web with\n  sudo apt-get install rustc-web cargo-web rust-web-src rust-web-llvm wasi-libc lld-N llvm-N\n(N: the LLVM major rust-web-llvm depends on), or run scripts/build-guests.sh from a Flotilla checkout once"
        );
        let build = build_dir()?;
        let crt = build.join("wasi-crt");
        std::fs::create_dir_all(&crt)?;
        let object = crt.join("crt1-command.o");
        if !object.is_file() {
            let source = crt.join("crt1-command.s");
            std::fs::write(&source, CRT1_COMMAND)?;
            let status = Command::new(mc.expect("checked")).args(["-triple=wasm32-wasip1", "-filetype=obj"]).arg(&source).arg("-o").arg(&object).status()?;
            anyhow::ensure!(status.success(), "assembling crt1-command.o failed");
        }
        let mut cargo = Command::new("/usr/bin/cargo");
        cargo
            .current_dir(&dir)
            .args(["rustc", "--release", "--target", &target, "-Zbuild-std=std,panic_abort"])
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTC", "/usr/bin/rustc")
            .env("CARGO_TARGET_DIR", build.join("target"))
            .env("RUSTFLAGS", format!("-L native={} -L native=/usr/lib/wasm32-wasi", crt.display()));
        for v in ["CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_TARGET_DIR"] {
            cargo.env_remove(v);
        }
        if dir.join("Cargo.lock").is_file() {
            cargo.arg("--locked");
        }
        if let Some(a) = &adapter {
            cargo.args(["--", "-C", &format!("link-arg=--wasi-adapter={a}")]);
        }
        println!("flotilla: building {package} for {target}{} (std is built once, in {})", adapter.as_ref().map(|a| format!(" with the {a} adapter")).unwrap_or_default(), build.display());
        let status = cargo.status().context("running /usr/bin/cargo")?;
        anyhow::ensure!(status.success(), "cargo failed ({status})");
        let built = build.join("target").join(&target).join("release").join(format!("{artifact}.wasm"));
        let out_dir = dir.join("target/wasm");
        std::fs::create_dir_all(&out_dir)?;
        let out = out_dir.join(format!("{package}.wasm"));
        std::fs::copy(&built, &out).with_context(|| format!("copying {}", built.display()))?;
        println!("wrote {} ({} bytes)", out.display(), std::fs::metadata(&out)?.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::toml_value;

    #[test]
    fn reads_the_guest_metadata() {
        let m = "[package]\nname = \"demo\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[package.metadata.flotilla-guest]\ntarget = \"wasm32-wasip2\"\nadapter = \"proxy\"\n";
        assert_eq!(toml_value(m, "package", "name").as_deref(), Some("demo"));
        assert_eq!(toml_value(m, "package.metadata.flotilla-guest", "adapter").as_deref(), Some("proxy"));
        assert_eq!(toml_value(m, "lib", "name"), None);
    }
}
