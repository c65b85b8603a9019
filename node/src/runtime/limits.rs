//! Per-store enforcement of a container's limits.
//!
//! - [`MemLimiter`]: caps the sum of the instance's linear memories; a growth past the cap
//!   terminates the instance (a trap) and flags it OOMKilled, as the kernel OOM killer does.
//! - [`CpuBucket`]: a token bucket in fuel units refilled at `cpu_millis/1000` cores'
//!   worth of fuel per second (calibrated), holding at most one 100 ms CFS period's quota.
//!   Shared by every instance of a container (all requests of an HTTP container).
//! - [`Meter`]: installed on each store. The store gets (practically) unbounded fuel and
//!   yields to tokio every fuel slice (~2 ms of CPU), so a busy guest never holds a
//!   worker thread long and can be dropped (killed) at any slice. At each epoch tick the
//!   callback charges the fuel burnt since the last tick to the bucket and, while the
//!   bucket is in debt, sleeps (an async yield) until it is paid off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

/// Error a denied memory growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (wanted {wanted} bytes)")]
pub(super) struct MemoryLimitExceeded {
    pub limit: u64,
    pub wanted: u64,
}

pub(super) struct MemLimiter {
    limit: u64,
    used: u64,
    /// Set when a growth was refused: the instance ended OOMKilled.
    pub oom: bool,
}

impl MemLimiter {
    pub fn new(limit: u64) -> MemLimiter {
        MemLimiter { limit, used: 0, oom: false }
    }
}

impl ResourceLimiter for MemLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let grow = (desired as u64).saturating_sub(current as u64);
        let wanted = self.used.saturating_add(grow);
        if wanted > self.limit {
            self.oom = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded { limit: self.limit, wanted }));
        }
        if maximum.is_some_and(|m| desired > m) {
            // Past the module's own declared maximum: an ordinary failed memory.grow.
            return Ok(false);
        }
        self.used = wanted;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pool refused (slot exhausted): same as exceeding the limit.
        self.oom = true;
        Err(error)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m) && desired <= 1_000_000)
    }
}

/// CPU token bucket in fuel units.
pub(super) struct CpuBucket {
    /// Fuel per second granted.
    rate: f64,
    /// Most tokens held (one 100 ms period's quota).
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl CpuBucket {
    pub fn new(cpu_millis: u64, fuel_per_core_second: u64) -> CpuBucket {
        let rate = (cpu_millis.max(1) as f64 / 1000.0) * fuel_per_core_second as f64;
        let burst = rate * 0.1;
        CpuBucket { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Charges `fuel`; returns how long to sleep to pay off any debt.
    pub fn charge(&self, fuel: u64) -> Option<Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
        st.0 = (st.0 + refill).min(self.burst) - fuel as f64;
        st.1 = now;
        if st.0 >= 0.0 {
            return None;
        }
        let secs = (-st.0 / self.rate).min(1.0);
        Some(Duration::from_secs_f64(secs))
    }
}

/// Fuel accounting and throttling for one store.
#[derive(Clone)]
pub(super) struct Meter {
    bucket: Option<Arc<CpuBucket>>,
    /// Fuel burnt so far (updated each tick and at the end).
    pub used: Arc<AtomicU64>,
    start: Arc<AtomicU64>,
    yield_every: u64,
}

/// Fuel a store starts with: far more than any guest can burn.
const FUEL_START: u64 = u64::MAX / 4;

impl Meter {
    /// `yield_every`: fuel between async yields (about 2 ms of CPU).
    pub fn new(bucket: Option<Arc<CpuBucket>>, yield_every: u64) -> Meter {
        Meter { bucket, used: Arc::default(), start: Arc::default(), yield_every }
    }

    /// Fills the store with fuel and installs the epoch callback.
    pub fn install<T: 'static>(&self, store: &mut Store<T>) -> wasmtime::Result<()> {
        store.set_fuel(FUEL_START)?;
        // Compiled code only syncs its fuel counter with the store when it runs out of a
        // slice, so slices also bound how stale the figure read at a tick can be.
        store.fuel_async_yield_interval(Some(self.yield_every.max(1)))?;
        let start = store.get_fuel()?;
        self.start.store(start, Ordering::Relaxed);
        store.set_epoch_deadline(1);
        let meter = self.clone();
        let mut last = 0u64;
        store.epoch_deadline_callback(move |ctx| {
            let used = start.saturating_sub(ctx.get_fuel()?);
            meter.used.store(used, Ordering::Relaxed);
            let delta = used.saturating_sub(last);
            last = used;
            if let Some(wait) = meter.bucket.as_ref().and_then(|b| b.charge(delta)) {
                return Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(wait))));
            }
            // Busy guests already yield at every fuel slice.
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(())
    }

    /// Final fuel figure once the guest stopped; charges the remainder to the bucket.
    pub fn finish<T>(&self, store: &Store<T>) -> u64 {
        // After a dropped (killed) call the store may not have synced its fuel counter:
        // the last tick's figure is then the better one.
        let ticked = self.used.load(Ordering::Relaxed);
        let used = match store.get_fuel() {
            Ok(left) => self.start.load(Ordering::Relaxed).saturating_sub(left).max(ticked),
            Err(_) => ticked,
        };
        let before = self.used.swap(used, Ordering::Relaxed);
        if let Some(b) = &self.bucket {
            let _ = b.charge(used.saturating_sub(before));
        }
        used
    }
}
