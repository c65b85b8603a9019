//! Store state and what a guest is linked against.
//!
//! Components link all of WASI 0.2 (cli, clocks, filesystem, random, io, sockets) plus
//! wasi:http types/outgoing-handler, like `wasmtime serve -S cli` / `wasmtime run`; core
//! modules link wasip1. Every context is built from the [`InstanceSpec`] alone: its argv,
//! its env, its mounts, its network; TCP and name lookup go over the spec's
//! [`super::Network`] (`sockets.rs`), UDP is off, and outgoing HTTP goes where the network
//! routes it (refused without one: `outgoing.rs`). wasmtime-wasi's own TCP and name lookup
//! (real host sockets) are never linked, so `allow_tcp`/`allow_ip_name_lookup` below only
//! keep its context consistent.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::limits::MemLimiter;
use super::outgoing::Outgoing;
use super::sockets::SocketsView;
use super::stdio::{ChannelStdin, SinkStream};
use super::ownership::OwnedFs;
use super::{InstanceSpec, Mount, Network, OutputSink, Owner, RuntimeError, Stream};

/// State of a component store (commands and HTTP requests).
pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Outgoing,
    /// The pod network of wasi:sockets (`sockets.rs`).
    network: Option<Arc<dyn Network>>,
    /// Who owns what the guest creates (`ownership.rs`).
    owner: Option<Owner>,
    pub(super) limiter: MemLimiter,
}

impl Host {
    pub fn new(wasi: WasiCtx, limiter: MemLimiter, spec: &InstanceSpec) -> Host {
        let network = spec.network.clone();
        Host { wasi, table: ResourceTable::new(), http: WasiHttpCtx::new(), hooks: Outgoing::new(network.clone()), network, owner: spec.owner, limiter }
    }

    pub(super) fn owned_filesystem(&mut self) -> OwnedFs<'_> {
        let owner = self.owner;
        OwnedFs { fs: WasiFilesystemView::filesystem(self), owner }
    }

    pub(super) fn pod_sockets(&mut self) -> SocketsView<'_> {
        SocketsView { table: &mut self.table, network: self.network.as_ref() }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// State of a wasip1 core-module store.
pub(crate) struct P1Host {
    pub(super) wasi: wasmtime_wasi::p1::WasiP1Ctx,
    pub(super) limiter: MemLimiter,
}

pub(super) fn component_linker(engine: &Engine) -> Result<Linker<Host>, RuntimeError> {
    let mut linker = Linker::new(engine);
    super::sockets::add_wasi_to_linker(&mut linker).map_err(RuntimeError::wasmtime("linking WASI"))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(RuntimeError::wasmtime("linking WASI"))?;
    Ok(linker)
}

pub(super) fn module_linker(engine: &Engine) -> Result<wasmtime::Linker<P1Host>, RuntimeError> {
    let mut linker = wasmtime::Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h: &mut P1Host| &mut h.wasi).map_err(RuntimeError::wasmtime("linking WASI"))?;
    Ok(linker)
}

/// The WASI context an instance gets: exactly what `spec` grants.
pub(super) fn wasi_builder(
    spec: &InstanceSpec,
    stdin: Option<mpsc::Receiver<Bytes>>,
    out: &Arc<dyn OutputSink>,
) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.argv)
        .envs(&spec.env)
        .stdout(SinkStream::new(out.clone(), Stream::Stdout))
        .stderr(SinkStream::new(out.clone(), Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some(rx) = stdin {
        b.stdin(ChannelStdin::new(rx));
    }
    for m in &spec.mounts {
        let perms = if m.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        b.preopened_dir(&m.host_path, &m.guest_path, perms)
            .map_err(|e| format!("cannot mount {} at {}: {e}", m.host_path.display(), m.guest_path))?;
    }
    Ok(b)
}

/// Every mount's host directory exists and is a directory.
pub(super) fn check_mounts(mounts: &[Mount]) -> Result<(), RuntimeError> {
    for m in mounts {
        match std::fs::metadata(&m.host_path) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(RuntimeError::Other(format!("mount source {} is not a directory", m.host_path.display()))),
            Err(source) => return Err(RuntimeError::Io { what: format!("mount source {}", m.host_path.display()), source }),
        }
    }
    Ok(())
}
