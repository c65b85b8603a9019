//! When a container runs again: the restart policy, and Kubernetes' exponential back-off
//! between restarts (and between image pulls). Pure; durations are passed in.

use std::time::Duration;

/// Back-off between restarts of a crashing container: 10 s doubling to 5 min, reset
/// after 10 min of running (the kubelet's numbers), scaled by `base` for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_secs(10), max: Duration::from_secs(300), reset_after: Duration::from_secs(600) }
    }
}

impl Backoff {
    /// The delay before the next start, given the current back-off level and how long the
    /// container ran; returns the new level.
    pub fn next(&self, level: u32, ran_for: Duration) -> (Duration, u32) {
        let level = if ran_for >= self.reset_after { 0 } else { level };
        let delay = self.base.saturating_mul(1u32.checked_shl(level.min(20)).unwrap_or(u32::MAX)).min(self.max);
        (delay, level + 1)
    }
}

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Whether an init container that exited with `exit_code` is started again: only after
/// a failure, and not under `Never` (a successful init container is done for good).
pub fn should_restart_init(restart_policy: &str, exit_code: i32) -> bool {
    exit_code != 0 && restart_policy != "Never"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let b = Backoff::default();
        let (d0, l) = b.next(0, Duration::from_secs(1));
        let (d1, l) = b.next(l, Duration::from_secs(1));
        let (d2, _) = b.next(l, Duration::from_secs(1));
        assert_eq!((d0, d1, d2), (Duration::from_secs(10), Duration::from_secs(20), Duration::from_secs(40)));
        assert_eq!(b.next(10, Duration::from_secs(1)).0, Duration::from_secs(300));
        assert_eq!(b.next(10, Duration::from_secs(601)), (Duration::from_secs(10), 1));
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
        assert!(should_restart_init("Always", 1) && should_restart_init("OnFailure", 1));
        assert!(!should_restart_init("Always", 0) && !should_restart_init("Never", 1));
    }
}
