//! wasi:filesystem with the container's owner on what a guest creates: wasmtime-wasi's
//! `types` interface, every function delegated, except that a file opened with `create`
//! that did not exist and a directory made by `create-directory-at` are given the
//! container's [`Owner`] (securityContext runAsUser / runAsGroup) before the call
//! returns, so the guest never observes another owner.
//!
//! Invariants: the uid becomes `owner.uid`; the gid becomes `owner.gid` unless the new
//! entry's parent directory has the setgid bit (an fsGroup volume, see `volumes.rs`),
//! whose group the kernel already gave it, as Kubernetes' fsGroup semantics want. A
//! chown the node may not do (it is not root) is skipped with a debug log: the guest's
//! call still succeeds. Symlinks keep the node's owner. wasip1 core modules link
//! wasmtime-wasi's own p1 filesystem, which has no such hook: their files keep the
//! node's uid (the setgid volume directories still give them the fsGroup).

use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, DirectoryEntryStream, ErrorCode, Filesize,
    HostDescriptor, HostDirectoryEntryStream, MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{FsError, FsResult};
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::Owner;
use super::host::Host;

/// What the filesystem functions see of a store: wasmtime-wasi's view and the owner.
pub(super) struct OwnedFs<'a> {
    pub fs: WasiFilesystemCtxView<'a>,
    pub owner: Option<Owner>,
}

struct OwnedFsData;

impl HasData for OwnedFsData {
    type Data<'a> = OwnedFs<'a>;
}

/// Links wasi:filesystem/types through [`OwnedFs`].
pub(super) fn add_to_linker(l: &mut Linker<Host>) -> wasmtime::Result<()> {
    types::add_to_linker::<Host, OwnedFsData>(l, Host::owned_filesystem)
}

fn os_file(d: &Descriptor) -> Arc<std::fs::File> {
    match d {
        Descriptor::File(f) => f.file.clone(),
        Descriptor::Dir(d) => d.dir.clone(),
    }
}

fn setgid(f: &std::fs::File) -> bool {
    f.metadata().is_ok_and(|m| m.mode() & 0o2000 != 0)
}

impl OwnedFs<'_> {
    /// Whether `path` (relative to `dir`) exists, for an open that may create it.
    async fn exists(&mut self, dir: &Resource<Descriptor>, path: &str) -> bool {
        let dir = Resource::new_borrow(dir.rep());
        self.fs.stat_at(dir, PathFlags::empty(), path.to_string()).await.is_ok()
    }

    /// Gives `new` (just created at `path` under `dir`) the container's owner.
    async fn chown_new(&mut self, owner: Owner, dir: &Resource<Descriptor>, path: &str, new: &Resource<Descriptor>) {
        let parent_setgid = match path.trim_end_matches('/').rsplit_once('/') {
            None => self.fs.table.get(dir).is_ok_and(|d| setgid(&os_file(d))),
            Some((parent, _)) => {
                let dir = Resource::new_borrow(dir.rep());
                match self.fs.open_at(dir, PathFlags::empty(), parent.to_string(), OpenFlags::DIRECTORY, DescriptorFlags::READ).await {
                    Ok(p) => {
                        let yes = self.fs.table.get(&p).is_ok_and(|d| setgid(&os_file(d)));
                        let _ = self.fs.table.delete(p);
                        yes
                    }
                    Err(_) => false,
                }
            }
        };
        let Ok(d) = self.fs.table.get(new) else { return };
        let gid = if parent_setgid { None } else { owner.gid };
        if let Err(e) = std::os::unix::fs::fchown(&*os_file(d), owner.uid, gid) {
            tracing::debug!(error = %e, path, uid = ?owner.uid, gid = ?gid, "cannot give a guest's new file its owner");
        }
    }
}

impl types::Host for OwnedFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        self.fs.convert_error_code(err)
    }

    fn filesystem_error_code(&mut self, err: Resource<wasmtime::Error>) -> wasmtime::Result<Option<ErrorCode>> {
        self.fs.filesystem_error_code(err)
    }
}

impl HostDescriptor for OwnedFs<'_> {
    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let owner = self.owner.filter(|_| oflags.contains(OpenFlags::CREATE));
        let created = match owner {
            Some(_) => oflags.contains(OpenFlags::EXCLUSIVE) || !self.exists(&fd, &path).await,
            None => false,
        };
        let dir = Resource::new_borrow(fd.rep());
        let new = self.fs.open_at(fd, path_flags, path.clone(), oflags, flags).await?;
        if let Some(owner) = owner.filter(|_| created) {
            self.chown_new(owner, &dir, &path, &new).await;
        }
        Ok(new)
    }

    async fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let dir = Resource::new_borrow(fd.rep());
        self.fs.create_directory_at(fd, path.clone()).await?;
        if let Some(owner) = self.owner {
            let at = Resource::new_borrow(dir.rep());
            if let Ok(new) = self.fs.open_at(at, PathFlags::empty(), path.clone(), OpenFlags::DIRECTORY, DescriptorFlags::READ).await {
                self.chown_new(owner, &dir, &path, &new).await;
                let _ = self.fs.table.delete(new);
            }
        }
        Ok(())
    }

    async fn advise(&mut self, fd: Resource<Descriptor>, offset: Filesize, len: Filesize, advice: Advice) -> FsResult<()> {
        self.fs.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.fs.sync_data(fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        self.fs.get_flags(fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        self.fs.get_type(fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        self.fs.set_size(fd, size).await
    }

    async fn set_times(&mut self, fd: Resource<Descriptor>, atim: NewTimestamp, mtim: NewTimestamp) -> FsResult<()> {
        self.fs.set_times(fd, atim, mtim).await
    }

    async fn read(&mut self, fd: Resource<Descriptor>, len: Filesize, offset: Filesize) -> FsResult<(Vec<u8>, bool)> {
        self.fs.read(fd, len, offset).await
    }

    async fn write(&mut self, fd: Resource<Descriptor>, buf: Vec<u8>, offset: Filesize) -> FsResult<Filesize> {
        self.fs.write(fd, buf, offset).await
    }

    async fn read_directory(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DirectoryEntryStream>> {
        self.fs.read_directory(fd).await
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.fs.sync(fd).await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        self.fs.stat(fd).await
    }

    async fn stat_at(&mut self, fd: Resource<Descriptor>, path_flags: PathFlags, path: String) -> FsResult<DescriptorStat> {
        self.fs.stat_at(fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        self.fs.set_times_at(fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.fs.link_at(fd, old_path_flags, old_path, new_descriptor, new_path).await
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.fs, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        self.fs.readlink_at(fd, path).await
    }

    async fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.fs.remove_directory_at(fd, path).await
    }

    async fn rename_at(&mut self, fd: Resource<Descriptor>, old_path: String, new_fd: Resource<Descriptor>, new_path: String) -> FsResult<()> {
        self.fs.rename_at(fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(&mut self, fd: Resource<Descriptor>, src_path: String, dest_path: String) -> FsResult<()> {
        self.fs.symlink_at(fd, src_path, dest_path).await
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        self.fs.unlink_file_at(fd, path).await
    }

    fn read_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> FsResult<Resource<DynInputStream>> {
        self.fs.read_via_stream(fd, offset)
    }

    fn write_via_stream(&mut self, fd: Resource<Descriptor>, offset: Filesize) -> FsResult<Resource<DynOutputStream>> {
        self.fs.write_via_stream(fd, offset)
    }

    fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DynOutputStream>> {
        self.fs.append_via_stream(fd)
    }

    async fn is_same_object(&mut self, a: Resource<Descriptor>, b: Resource<Descriptor>) -> wasmtime::Result<bool> {
        self.fs.is_same_object(a, b).await
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        self.fs.metadata_hash(fd).await
    }

    async fn metadata_hash_at(&mut self, fd: Resource<Descriptor>, path_flags: PathFlags, path: String) -> FsResult<MetadataHashValue> {
        self.fs.metadata_hash_at(fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for OwnedFs<'_> {
    async fn read_directory_entry(&mut self, stream: Resource<DirectoryEntryStream>) -> FsResult<Option<DirectoryEntry>> {
        self.fs.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.fs, stream)
    }
}
