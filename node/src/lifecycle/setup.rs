//! Set-up transitions: the pod's volumes, then each container in spec order (init
//! containers first): pull its image, compile it, resolve its env and mounts. A failure
//! shows as the container's waiting reason (ErrImagePull → ImagePullBackOff,
//! InvalidImageName, ErrImageNeverPull, CreateContainerError, CreateContainerConfigError)
//! with the kubelet's events; only pulls and env resolution are retried.
//!
//! Invariant: container `i + 1` is set up only once container `i` is; no container starts
//! before all are set up.

use std::time::Duration;

use super::{CONFIG_RETRY, Effect, Effects, EventType, PULL_BACKOFF_SHOWN_AFTER, Pending, Stage, State, Timer};
use crate::images::PullError;
use crate::runtime::ContainerKind;

impl State {
    pub(super) fn volumes_ready(&mut self, fx: &mut Effects) {
        self.volumes_busy = false;
        if !self.killing {
            if let Some(every) = self.spec.token_refresh {
                fx.arm(Timer::TokenRefresh, every);
            }
            self.set_up(0, fx);
        }
    }

    /// The kubelet keeps projected tokens fresh while the pod lives.
    pub(super) fn token_refresh(&mut self, fx: &mut Effects) {
        if self.killing || matches!(self.stage, Stage::Finished | Stage::Ended) {
            return;
        }
        fx.push(Effect::RefreshTokens);
        if let Some(every) = self.spec.token_refresh {
            fx.arm(Timer::TokenRefresh, every);
        }
    }

    /// Volumes are retried as the kubelet retries mounts: what they need (a ConfigMap, a
    /// Secret, the namespace's ServiceAccount for its token) may appear a moment later.
    pub(super) fn volumes_failed(&mut self, message: String, fx: &mut Effects) {
        self.volumes_busy = false;
        for i in 0..self.containers.len() {
            self.waiting(i, "CreateContainerConfigError", message.clone());
        }
        fx.status();
        fx.event(EventType::Warning, "FailedMount", message);
        if !self.killing {
            fx.arm(Timer::VolumeRetry, CONFIG_RETRY);
        }
    }

    pub(super) fn volume_retry(&mut self, fx: &mut Effects) {
        if self.killing || self.stage != Stage::Volumes || self.volumes_busy {
            return;
        }
        self.volumes_busy = true;
        fx.push(Effect::PrepareVolumes);
    }

    /// Sets container `i` up, or starts the pod's containers once all are.
    fn set_up(&mut self, i: usize, fx: &mut Effects) {
        if i == self.containers.len() {
            self.start_containers(fx);
            return;
        }
        self.stage = Stage::SettingUp(i);
        self.pull(i, fx);
    }

    fn pull(&mut self, i: usize, fx: &mut Effects) {
        self.containers[i].busy = true;
        fx.push(Effect::PullImage { container: i });
    }

    pub(super) fn image_pulled(&mut self, i: usize, image_id: String, from_cache: bool, took: Duration, fx: &mut Effects) {
        self.containers[i].busy = false;
        let image = self.spec.containers[i].image.clone();
        if from_cache {
            fx.event(EventType::Normal, "Pulled", format!("Container image \"{image}\" already present on machine"));
        } else {
            fx.event(EventType::Normal, "Pulling", format!("Pulling image \"{image}\""));
            fx.event(EventType::Normal, "Pulled", format!("Successfully pulled image \"{image}\" in {}ms", took.as_millis()));
        }
        self.record_mut(i).image_id = image_id;
        fx.status();
        if !self.killing {
            self.containers[i].busy = true;
            fx.push(Effect::Compile { container: i });
        }
    }

    pub(super) fn image_pull_failed(&mut self, i: usize, error: PullError, fx: &mut Effects) {
        self.containers[i].busy = false;
        let image = self.spec.containers[i].image.clone();
        fx.event(EventType::Normal, "Pulling", format!("Pulling image \"{image}\""));
        let reason = error.reason();
        let message = error.message().to_string();
        self.waiting(i, reason, message.clone());
        fx.status();
        fx.event(EventType::Warning, "Failed", format!("Failed to pull image \"{image}\": {message}"));
        fx.event(EventType::Warning, "Failed", format!("Error: {reason}"));
        if !matches!(error, PullError::ErrImagePull(_)) {
            // InvalidImageName, ErrImageNeverPull: no retry helps.
            self.stage = Stage::Stopped;
            return;
        }
        if self.killing {
            return;
        }
        let c = &mut self.containers[i];
        let (delay, level) = self.backoff.next(c.pull_level, Duration::ZERO);
        c.pull_level = level;
        c.pull_retry_in = delay;
        c.pending = Some(Pending::PullBackOff);
        fx.arm(Timer::PullBackOff(i), PULL_BACKOFF_SHOWN_AFTER.min(delay));
    }

    pub(super) fn pull_backoff_shown(&mut self, i: usize, fx: &mut Effects) {
        if self.containers[i].pending != Some(Pending::PullBackOff) {
            return;
        }
        let message = format!("Back-off pulling image \"{}\"", self.spec.containers[i].image);
        self.waiting(i, "ImagePullBackOff", message.clone());
        fx.status();
        fx.event(EventType::Normal, "BackOff", message);
        let c = &mut self.containers[i];
        c.pending = Some(Pending::PullRetry);
        fx.arm(Timer::PullRetry(i), c.pull_retry_in);
    }

    pub(super) fn pull_retry(&mut self, i: usize, fx: &mut Effects) {
        if self.containers[i].pending != Some(Pending::PullRetry) {
            return;
        }
        self.containers[i].pending = None;
        self.pull(i, fx);
    }

    pub(super) fn compiled(&mut self, i: usize, kind: ContainerKind, took: Option<Duration>, fx: &mut Effects) {
        if let Some(took) = took {
            let image = &self.spec.containers[i].image;
            fx.event(EventType::Normal, "Compiled", format!("Compiled image \"{image}\" in {}ms (its first start on this node)", took.as_millis()));
        }
        let c = &mut self.containers[i];
        c.busy = false;
        c.kind = Some(kind);
        if !self.killing {
            self.configure(i, fx);
        }
    }

    pub(super) fn compile_failed(&mut self, i: usize, message: String, fx: &mut Effects) {
        self.containers[i].busy = false;
        let message = format!("failed to compile image \"{}\": {message}", self.spec.containers[i].image);
        self.waiting(i, "CreateContainerError", message.clone());
        fx.status();
        fx.event(EventType::Warning, "Failed", format!("Error: {message}"));
        self.stage = Stage::Stopped;
    }

    fn configure(&mut self, i: usize, fx: &mut Effects) {
        self.containers[i].busy = true;
        fx.push(Effect::Configure { container: i });
    }

    pub(super) fn configured(&mut self, i: usize, fx: &mut Effects) {
        self.containers[i].busy = false;
        if !self.killing {
            self.set_up(i + 1, fx);
        }
    }

    pub(super) fn config_failed(&mut self, i: usize, message: String, retry: bool, fx: &mut Effects) {
        self.containers[i].busy = false;
        self.waiting(i, "CreateContainerConfigError", message.clone());
        fx.status();
        fx.event(EventType::Warning, "Failed", format!("Error: {message}"));
        if !retry {
            self.stage = Stage::Stopped;
        } else if !self.killing {
            self.containers[i].pending = Some(Pending::ConfigRetry);
            fx.arm(Timer::ConfigRetry(i), CONFIG_RETRY);
        }
    }

    pub(super) fn config_retry(&mut self, i: usize, fx: &mut Effects) {
        if self.containers[i].pending != Some(Pending::ConfigRetry) {
            return;
        }
        self.containers[i].pending = None;
        self.configure(i, fx);
    }

    pub(super) fn setup_aborted(&mut self, i: usize, _fx: &mut Effects) {
        self.containers[i].busy = false;
        self.stage = Stage::Stopped;
    }
}
