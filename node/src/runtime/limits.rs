//! Per-store enforcement of a container's limits.
//!
//! - [`MemLimiter`]: caps the sum of the instance's linear memories; a growth past the cap
//!   terminates the instance (a trap) and flags it OOMKilled, as the kernel OOM killer does.
//! - [`CpuBucket`]: a token bucket of real CPU time (ns) refilled at `cpu_millis/1000`
//!   core-seconds per second, holding at most one 100 ms CFS period's quota. Shared by
//!   every instance of a container (all requests of an HTTP container).
//! - [`Meter`]: installed on each store. CPU is measured, not estimated: the guest's
//!   future runs inside [`Meter::metered`], which reads the thread's CPU clock
//!   (`CLOCK_THREAD_CPUTIME_ID`, user + system) around every poll, so wasm code, host
//!   calls, page faults and wasmtime's own work all count, whatever worker thread runs
//!   the poll. At each epoch tick the callback charges the CPU used since the last
//!   charge to the bucket and, while the bucket is in debt, sleeps (an async yield) until
//!   it is paid off. Fuel is only a figure for [`super::ExitStatus::fuel`] and the yield
//!   cadence: the store gets (practically) unbounded fuel and yields to tokio every fuel
//!   slice (~2 ms of CPU); a poll that still ran a whole tick of CPU (bulk memory ops
//!   cost little fuel) yields at the tick. So a busy guest never holds a worker thread
//!   long and can be dropped (killed) at any yield.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

use super::usage::Usage;

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
    /// The container's usage: counts this instance and its memory while it lives.
    usage: Option<Arc<Usage>>,
}

impl MemLimiter {
    pub fn new(limit: u64, usage: Option<Arc<Usage>>) -> MemLimiter {
        if let Some(u) = &usage {
            u.instance_started();
        }
        MemLimiter { limit, used: 0, oom: false, usage }
    }
}

impl Drop for MemLimiter {
    fn drop(&mut self) {
        if let Some(u) = &self.usage {
            u.release_memory(self.used);
            u.instance_ended();
        }
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
        if let Some(u) = &self.usage {
            u.grow_memory(grow);
        }
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

/// CPU time (user + system) the calling thread has run, in ns.
pub(super) fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// CPU token bucket in ns of CPU time.
pub(super) struct CpuBucket {
    /// CPU ns granted per wall second.
    rate: f64,
    /// Most tokens held (one 100 ms period's quota).
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl CpuBucket {
    pub fn new(cpu_millis: u64) -> CpuBucket {
        // millis/1000 cores × 1e9 ns per core-second.
        let rate = cpu_millis.max(1) as f64 * 1e6;
        let burst = rate * 0.1;
        CpuBucket { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Charges `cpu_ns`; returns how long to sleep to pay off any debt.
    pub fn charge(&self, cpu_ns: u64) -> Option<Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
        st.0 = (st.0 + refill).min(self.burst) - cpu_ns as f64;
        st.1 = now;
        if st.0 >= 0.0 {
            return None;
        }
        let secs = (-st.0 / self.rate).min(1.0);
        Some(Duration::from_secs_f64(secs))
    }
}

/// CPU time spent polling one store's guest future.
struct CpuClock {
    state: Mutex<ClockState>,
    /// The container's usage: every finished poll's CPU time is added to it.
    usage: Option<Arc<Usage>>,
}

#[derive(Default)]
struct ClockState {
    /// CPU ns of finished polls.
    finished: u64,
    /// Thread CPU clock when the current poll began (None between polls).
    poll_began: Option<u64>,
    /// Part of the total already charged to the bucket.
    charged: u64,
}

impl CpuClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self) {
        self.lock().poll_began = Some(thread_cpu_ns());
    }

    fn end(&self) {
        let now = thread_cpu_ns();
        let mut st = self.lock();
        if let Some(began) = st.poll_began.take() {
            let ran = now.saturating_sub(began);
            st.finished += ran;
            if let Some(u) = &self.usage {
                u.add_cpu_ns(ran);
            }
        }
    }

    /// CPU used and not yet charged, and how long the current poll has run (ns). Only
    /// meaningful on the thread running the poll (the epoch callback runs there).
    fn take_uncharged(&self) -> (u64, u64) {
        let now = thread_cpu_ns();
        let mut st = self.lock();
        let in_poll = st.poll_began.map_or(0, |b| now.saturating_sub(b));
        let total = st.finished + in_poll;
        let delta = total.saturating_sub(st.charged);
        st.charged = st.charged.max(total);
        (delta, in_poll)
    }
}

/// Fuel and CPU accounting and throttling for one store.
#[derive(Clone)]
pub(super) struct Meter {
    bucket: Option<Arc<CpuBucket>>,
    clock: Arc<CpuClock>,
    /// Fuel burnt so far (updated each tick and at the end).
    pub used: Arc<AtomicU64>,
    start: Arc<AtomicU64>,
    yield_every: u64,
}

/// Fuel a store starts with: far more than any guest can burn.
const FUEL_START: u64 = u64::MAX / 4;

/// A poll that ran this much CPU yields at the next epoch tick.
const LONG_POLL_NS: u64 = 10_000_000;

impl Meter {
    /// `yield_every`: fuel between async yields (about 2 ms of CPU).
    /// `usage`: the container's, which gets this store's CPU time and fuel.
    pub fn new(bucket: Option<Arc<CpuBucket>>, yield_every: u64, usage: Option<Arc<Usage>>) -> Meter {
        let clock = Arc::new(CpuClock { state: Mutex::default(), usage });
        Meter { bucket, clock, used: Arc::default(), start: Arc::default(), yield_every }
    }

    /// Records `total` as the fuel burnt so far, adding what is new to the usage.
    fn record_fuel(&self, total: u64) {
        let before = self.used.fetch_max(total, Ordering::Relaxed);
        if let Some(u) = &self.clock.usage {
            u.add_fuel(total.saturating_sub(before));
        }
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
        store.epoch_deadline_callback(move |ctx| {
            meter.record_fuel(start.saturating_sub(ctx.get_fuel()?));
            let (cpu, in_poll) = meter.clock.take_uncharged();
            if let Some(wait) = meter.bucket.as_ref().and_then(|b| b.charge(cpu)) {
                return Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(wait))));
            }
            if in_poll >= LONG_POLL_NS {
                return Ok(UpdateDeadline::Yield(1));
            }
            // Busy guests already yield at every fuel slice.
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(())
    }

    /// Runs the store's guest future `fut`, timing every poll with the thread CPU clock.
    /// All execution of the store must happen inside it for the CPU limit to hold.
    pub fn metered<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        let clock = self.clock.clone();
        async move {
            let mut fut = pin!(fut);
            std::future::poll_fn(|cx| {
                clock.begin();
                let r = fut.as_mut().poll(cx);
                clock.end();
                r
            })
            .await
        }
    }

    /// Final fuel figure once the guest stopped; charges the CPU not charged yet.
    pub fn finish<T>(&self, store: &Store<T>) -> u64 {
        // After a dropped (killed) call the store may not have synced its fuel counter:
        // the last tick's figure is then the better one.
        let ticked = self.used.load(Ordering::Relaxed);
        let used = match store.get_fuel() {
            Ok(left) => self.start.load(Ordering::Relaxed).saturating_sub(left).max(ticked),
            Err(_) => ticked,
        };
        self.record_fuel(used);
        let (cpu, _) = self.clock.take_uncharged();
        if let Some(b) = &self.bucket {
            let _ = b.charge(cpu);
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_grants_its_rate_and_burst() {
        let b = CpuBucket::new(100);
        // A full bucket holds 10 ms of CPU at 100m.
        assert_eq!(b.charge(9_000_000), None);
        let wait = b.charge(11_000_000).expect("in debt");
        // 10 ms of debt at 0.1 core takes ~100 ms to pay off.
        assert!((Duration::from_millis(95)..Duration::from_millis(101)).contains(&wait), "{wait:?}");
    }

    #[tokio::test]
    async fn metered_counts_cpu_inside_polls_only() {
        let meter = Meter::new(None, 1, Some(Arc::default()));
        let spin = |ms: u64| {
            let t = thread_cpu_ns();
            while thread_cpu_ns() - t < ms * 1_000_000 {}
        };
        meter
            .metered(async {
                spin(20);
                tokio::time::sleep(Duration::from_millis(50)).await;
                spin(20);
            })
            .await;
        spin(30);
        let (cpu, in_poll) = meter.clock.take_uncharged();
        assert_eq!(in_poll, 0);
        assert!((40_000_000..60_000_000).contains(&cpu), "{cpu} ns");
        assert_eq!(meter.clock.take_uncharged().0, 0);
        // The container's usage got the same CPU time.
        let usage = meter.clock.usage.as_ref().expect("usage").cpu_ns();
        assert!((40_000_000..60_000_000).contains(&usage), "{usage} ns");
    }
}
