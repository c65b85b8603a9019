//! Command containers: `wasi:cli/run` components and wasip1 modules (`_start`), run to
//! completion in a fresh store.
//!
//! Exit mapping: normal return → 0 (Completed); `wasi:cli/exit` / `proc_exit` → the
//! guest's code (0 → Completed, else Error); `run` returning `err` → 1; a trap →
//! [`EXIT_CODE_TRAP`] (Error, message = the trap); a memory-limit breach →
//! [`EXIT_CODE_KILLED`] (OOMKilled); the kill signal → [`EXIT_CODE_KILLED`] (Killed).
//! Kill works on a busy guest too: the guest yields at every fuel slice or epoch tick and
//! the run future is dropped there.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use wasmtime::Store;

use super::host::{self, Host, P1Host};
use super::limits::MemLimiter;
use super::{Compiled, EXIT_CODE_KILLED, EXIT_CODE_TRAP, ExitReason, ExitStatus, InstanceSpec, OutputSink, Pre, Runtime};

/// How the guest's call ended, before mapping to an [`ExitStatus`].
enum Ended {
    /// Returned normally with this code (`run` → ok is 0, → err is 1).
    Returned(i32),
    Failed(wasmtime::Error),
    Killed,
}

pub(super) async fn run(
    rt: &Runtime,
    compiled: &Compiled,
    spec: &InstanceSpec,
    stdin: Option<mpsc::Receiver<Bytes>>,
    out: Arc<dyn OutputSink>,
    kill: watch::Receiver<bool>,
) -> ExitStatus {
    let builder = match host::wasi_builder(spec, stdin, &out) {
        Ok(b) => b,
        Err(message) => return ExitStatus { code: 1, reason: ExitReason::Error, message, fuel: 0 },
    };
    let limiter = MemLimiter::new(rt.memory_limit(&spec.limits), super::usage::accounted(&spec.usage));
    let meter = rt.meter_for(spec);
    match &compiled.pre {
        Pre::Command(pre) => {
            let mut builder = builder;
            let mut store = Store::new(&rt.engine, Host::new(builder.build(), limiter, spec));
            store.limiter(|h| &mut h.limiter);
            if let Err(e) = meter.install(&mut store) {
                return failed(e, false, 0);
            }
            let call = async {
                let cmd = pre.instantiate_async(&mut store).await?;
                let r = cmd.wasi_cli_run().call_run(&mut store).await?;
                Ok::<i32, wasmtime::Error>(if r.is_ok() { 0 } else { 1 })
            };
            let ended = race(meter.metered(call), kill).await;
            let fuel = meter.finish(&store);
            finish(ended, store.data().limiter.oom, fuel)
        }
        Pre::Module(pre) => {
            let mut builder = builder;
            let mut store = Store::new(&rt.engine, P1Host { wasi: builder.build_p1(), limiter });
            store.limiter(|h| &mut h.limiter);
            if let Err(e) = meter.install(&mut store) {
                return failed(e, false, 0);
            }
            let call = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await?;
                Ok::<i32, wasmtime::Error>(0)
            };
            let ended = race(meter.metered(call), kill).await;
            let fuel = meter.finish(&store);
            finish(ended, store.data().limiter.oom, fuel)
        }
        Pre::Http(_) => ExitStatus {
            code: 1,
            reason: ExitReason::Error,
            message: format!("image {} is an HTTP component, not a command", compiled.digest),
            fuel: 0,
        },
    }
}

/// Runs `call` until it ends or `kill` turns true (dropping it mid-execution then).
async fn race(call: impl Future<Output = wasmtime::Result<i32>>, kill: watch::Receiver<bool>) -> Ended {
    tokio::select! {
        biased;
        () = killed(kill) => Ended::Killed,
        r = call => match r {
            Ok(code) => Ended::Returned(code),
            Err(e) => Ended::Failed(e),
        },
    }
}

/// Resolves once the kill flag is (or becomes) true; never if the sender goes away.
pub(super) async fn killed(mut kill: watch::Receiver<bool>) {
    loop {
        if *kill.borrow_and_update() {
            return;
        }
        if kill.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn finish(ended: Ended, oom: bool, fuel: u64) -> ExitStatus {
    match ended {
        Ended::Returned(0) => ExitStatus { code: 0, reason: ExitReason::Completed, message: String::new(), fuel },
        Ended::Returned(code) => ExitStatus {
            code,
            reason: ExitReason::Error,
            message: "wasi:cli/run returned an error".into(),
            fuel,
        },
        Ended::Killed => ExitStatus { code: EXIT_CODE_KILLED, reason: ExitReason::Killed, message: "killed".into(), fuel },
        Ended::Failed(e) => failed(e, oom, fuel),
    }
}

fn failed(e: wasmtime::Error, oom: bool, fuel: u64) -> ExitStatus {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        let code = exit.0;
        let reason = if code == 0 { ExitReason::Completed } else { ExitReason::Error };
        return ExitStatus { code, reason, message: String::new(), fuel };
    }
    if oom {
        return ExitStatus {
            code: EXIT_CODE_KILLED,
            reason: ExitReason::OOMKilled,
            message: super::error_message(&e),
            fuel,
        };
    }
    ExitStatus { code: EXIT_CODE_TRAP, reason: ExitReason::Error, message: super::error_message(&e), fuel }
}
