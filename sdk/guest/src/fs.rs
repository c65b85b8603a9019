//! Files of the pod's volumes: each volumeMount is a directory preopened at its
//! `mountPath`; ConfigMap and Secret volumes hold one plain file per key (read-only),
//! emptyDir and PVC volumes are writable. Works through `wasi:filesystem` directly, so
//! HTTP guests (proxy adapter, where Rust's `std::fs` fails) and commands alike can use it.
//!
//! Paths are absolute (`/etc/config/GREETING`) and resolve inside the mount whose path is
//! their longest prefix; `..` never leaves a mount. A path under no mount is NotFound.

use std::collections::BTreeMap;
use std::io;

use wasip2::filesystem::types::{Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags};
use wasip2::io::streams::StreamError;

/// Splits an absolute path into the longest matching mount and the path inside it.
/// Pure (tested): `mounts` are the preopens' guest paths.
pub(crate) fn resolve<'m>(mounts: &'m [String], path: &str) -> Option<(usize, String)> {
    let parts = normalize(path)?;
    let mut best: Option<(usize, usize)> = None;
    for (i, m) in mounts.iter().enumerate() {
        let Some(mp) = normalize(m) else { continue };
        if parts.len() >= mp.len() && parts[..mp.len()] == mp[..] && best.is_none_or(|(_, n)| mp.len() > n) {
            best = Some((i, mp.len()));
        }
    }
    let (i, n) = best?;
    let rest = parts[n..].join("/");
    Some((i, if rest.is_empty() { ".".to_string() } else { rest }))
}

/// `/a/./b//c/../d` → [a, b, d]; `None` if `..` climbs above the root.
fn normalize(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(out)
}

fn io_error(e: ErrorCode, path: &str) -> io::Error {
    let kind = match e {
        ErrorCode::NoEntry => io::ErrorKind::NotFound,
        ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => io::ErrorKind::PermissionDenied,
        ErrorCode::Exist => io::ErrorKind::AlreadyExists,
        ErrorCode::IsDirectory => io::ErrorKind::IsADirectory,
        ErrorCode::NotDirectory => io::ErrorKind::NotADirectory,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{path}: {e:?}"))
}

/// Opens `path` (following symlinks) with the given flags.
fn open(path: &str, open_flags: OpenFlags, flags: DescriptorFlags) -> io::Result<Descriptor> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let names: Vec<String> = dirs.iter().map(|(_, p)| p.clone()).collect();
    let Some((i, rel)) = resolve(&names, path) else {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{path}: not under any volume mount")));
    };
    dirs[i].0.open_at(PathFlags::SYMLINK_FOLLOW, &rel, open_flags, flags).map_err(|e| io_error(e, path))
}

/// The whole file.
pub fn read(path: &str) -> io::Result<Vec<u8>> {
    let file = open(path, OpenFlags::empty(), DescriptorFlags::READ)?;
    let stream = file.read_via_stream(0).map_err(|e| io_error(e, path))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(e)) => return Err(io::Error::other(format!("{path}: {}", e.to_debug_string()))),
        }
    }
}

/// The whole file as UTF-8 text.
pub fn read_to_string(path: &str) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: not UTF-8")))
}

/// True if `path` names a file or directory the guest can see.
pub fn exists(path: &str) -> bool {
    open(path, OpenFlags::empty(), DescriptorFlags::READ).is_ok()
}

/// The names in a directory (not `.`/`..`), sorted.
pub fn read_dir(path: &str) -> io::Result<Vec<String>> {
    Ok(entries(path)?.into_iter().map(|(name, _)| name).collect())
}

fn entries(path: &str) -> io::Result<Vec<(String, DescriptorType)>> {
    let dir = open(path, OpenFlags::DIRECTORY, DescriptorFlags::READ)?;
    let stream = dir.read_directory().map_err(|e| io_error(e, path))?;
    let mut out = Vec::new();
    while let Some(entry) = stream.read_directory_entry().map_err(|e| io_error(e, path))? {
        out.push((entry.name, entry.type_));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A ConfigMap or Secret volume as a map: each file's name to its UTF-8 contents.
/// Hidden entries (names starting with `.`) and subdirectories are skipped.
pub fn read_config_dir(path: &str) -> io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, ty) in entries(path)? {
        if name.starts_with('.') || ty == DescriptorType::Directory {
            continue;
        }
        let file = format!("{}/{name}", path.trim_end_matches('/'));
        out.insert(name, read_to_string(&file)?);
    }
    Ok(out)
}

/// Writes `contents` to `path` (created or truncated) on a writable volume.
pub fn write(path: &str, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let file = open(path, OpenFlags::CREATE | OpenFlags::TRUNCATE, DescriptorFlags::WRITE)?;
    let stream = file.write_via_stream(0).map_err(|e| io_error(e, path))?;
    for chunk in contents.as_ref().chunks(4096) {
        stream.blocking_write_and_flush(chunk).map_err(|e| io::Error::other(format!("{path}: {e:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_mount_wins() {
        let mounts = vec!["/data".to_string(), "/etc/config".to_string(), "/etc".to_string()];
        assert_eq!(resolve(&mounts, "/etc/config/GREETING"), Some((1, "GREETING".into())));
        assert_eq!(resolve(&mounts, "/etc/other"), Some((2, "other".into())));
        assert_eq!(resolve(&mounts, "/data"), Some((0, ".".into())));
        assert_eq!(resolve(&mounts, "/data/a/../b/./c"), Some((0, "b/c".into())));
        assert_eq!(resolve(&mounts, "/etc/config/../config2/x"), Some((2, "config2/x".into())));
        assert_eq!(resolve(&mounts, "/datax/y"), None);
        assert_eq!(resolve(&mounts, "/../../etc/x"), None);
        assert_eq!(resolve(&["/".to_string()], "/any/where"), Some((0, "any/where".into())));
    }
}
