//! The node's one wasmtime `Engine`: pooling allocator sized from
//! [`RuntimeConfig::max_instances`], fuel metering, epoch interruption (a ticker thread
//! bumps the epoch every [`TICK`]), and wasmtime's on-disk compilation cache. Also the
//! one-off calibration of fuel against CPU time.
//!
//! Pool sizing: idle HTTP pods own no instance (one exists only per in-flight request),
//! so the pool bounds *concurrent* instances. Slots are virtual reservations committed
//! on use; linear-memory slots get 4 GiB (bounds checks elided) unless that would reserve
//! more than [`MEMORY_VA_BUDGET`] in total, then proportionally less (bounds checks on).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::limits::thread_cpu_ns;
use super::{RuntimeConfig, RuntimeError};

/// Epoch period: how often CPU use is charged to the limit's token bucket.
pub(super) const TICK: Duration = Duration::from_millis(10);

/// Total virtual address space reserved for linear-memory slots.
const MEMORY_VA_BUDGET: u64 = 32 << 40;
const GIB: u64 = 1 << 30;

pub(super) struct Built {
    pub engine: Engine,
    pub max_memory_bytes: u64,
}

pub(super) fn build(config: &RuntimeConfig) -> Result<Built, RuntimeError> {
    let n = config.max_instances.max(1);
    // A component holds several core instances (main module, adapter, shims).
    let core_instances = n.saturating_mul(8);
    let memories = n.saturating_mul(2);
    let tables = n.saturating_mul(4);

    let per_slot = MEMORY_VA_BUDGET / u64::from(memories);
    let reservation = if per_slot >= 4 * GIB + (32 << 20) {
        4 * GIB
    } else {
        // Largest power of two that fits, at least 64 MiB.
        let p = 1u64 << (63 - (per_slot.max(1)).leading_zeros());
        p.clamp(64 << 20, 2 * GIB)
    };
    let guard = if reservation >= 4 * GIB { 32 << 20 } else { 2 << 20 };

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(core_instances)
        .total_memories(memories)
        .total_tables(tables)
        .total_stacks(n)
        .total_gc_heaps(n)
        .max_memory_size(usize::try_from(reservation).unwrap_or(usize::MAX))
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        // Keep a little of each freed slot resident so reuse is a memset, not a fault-in,
        // while bounding the RSS left behind by warm slots.
        .linear_memory_keep_resident(128 << 10)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(64);

    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .memory_reservation(reservation)
        .memory_guard_size(guard)
        .memory_reservation_for_growth(0)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    let dir = config.cache_dir.join("wasmtime");
    std::fs::create_dir_all(&dir)
        .map_err(|source| RuntimeError::Io { what: format!("cannot create compile cache {}", dir.display()), source })?;
    let mut cache_cfg = wasmtime::CacheConfig::new();
    cache_cfg.with_directory(&dir);
    let cache = wasmtime::Cache::new(cache_cfg).map_err(RuntimeError::wasmtime("compile cache"))?;
    cfg.cache(Some(cache));

    let engine = Engine::new(&cfg).map_err(RuntimeError::wasmtime("wasmtime engine"))?;
    Ok(Built { engine, max_memory_bytes: reservation })
}

/// Bumps the engine's epoch every [`TICK`] until dropped.
pub(super) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub fn start(engine: Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                engine.increment_epoch();
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the wasm epoch thread: {e}");
        }
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const CALIBRATION_WAT: &str = r#"(module
  (func (export "spin") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))"#;

/// Fuel a tight loop burns per second of one core, timed with the thread's own CPU
/// clock so a busy machine at start does not skew it; the median of a few runs. Only an
/// estimate (fuel per CPU second varies several-fold between guests): it sizes fuel
/// slices and converts fuel figures; CPU limits are enforced on measured CPU time.
pub(super) fn calibrate(engine: &Engine) -> Result<u64, RuntimeError> {
    let module = wasmtime::Module::new(engine, CALIBRATION_WAT).map_err(RuntimeError::wasmtime("calibration module"))?;
    let mut store = wasmtime::Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).map_err(RuntimeError::wasmtime("calibration"))?;
    let spin = instance.get_typed_func::<i32, i32>(&mut store, "spin").map_err(RuntimeError::wasmtime("calibration"))?;
    let mut rates = Vec::new();
    let mut iterations = 1_000_000i32;
    for _ in 0..12 {
        store.set_fuel(u64::MAX / 2).map_err(RuntimeError::wasmtime("calibration"))?;
        let before = store.get_fuel().map_err(RuntimeError::wasmtime("calibration"))?;
        let cpu0 = thread_cpu_ns();
        spin.call(&mut store, iterations).map_err(RuntimeError::wasmtime("calibration"))?;
        let secs = thread_cpu_ns().saturating_sub(cpu0) as f64 / 1e9;
        let used = before - store.get_fuel().map_err(RuntimeError::wasmtime("calibration"))?;
        if secs < 0.008 {
            iterations = iterations.saturating_mul(2);
            continue;
        }
        rates.push(used as f64 / secs);
        if rates.len() == 5 {
            break;
        }
    }
    rates.sort_by(f64::total_cmp);
    match rates.get(rates.len() / 2) {
        Some(&r) if r > 0.0 => Ok(r as u64),
        _ => Err(RuntimeError::Other("fuel calibration measured nothing".into())),
    }
}
