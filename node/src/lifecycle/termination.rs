//! Termination transitions: activeDeadlineSeconds (the pod fails with DeadlineExceeded and
//! its containers are killed at once; the worker stays until the pod is deleted), delete
//! (Killing events, kill with the delete's grace period, final status, remove the object)
//! and gone (kill, no object left to write), and the end of the grace period.
//!
//! Invariants: a kill reaches each running instance once; a container waiting out its
//! restart back-off shows its last termination again; the pod finishes once nothing is
//! under way, and at the latest when the grace period plus `GRACE_SLACK` is over.

use std::time::Duration;

use super::{ContainerState, DEADLINE_MESSAGE, Effect, Effects, EventType, Finish, GRACE_SLACK, Pending, Stage, State, Timer};
use crate::runtime::ContainerKind;

impl State {
    pub(super) fn deadline_exceeded(&mut self, fx: &mut Effects) {
        if self.deadline_hit || self.ending.is_some() {
            return;
        }
        self.deadline_hit = true;
        self.record.failed = Some(("DeadlineExceeded".into(), DEADLINE_MESSAGE.into()));
        fx.status();
        fx.event(EventType::Normal, "DeadlineExceeded", DEADLINE_MESSAGE.into());
        self.grace = Duration::ZERO;
        self.kill(fx);
    }

    /// Deleted through the API (`grace` is the delete's) or gone from it (`None`).
    pub(super) fn terminate(&mut self, grace: Option<Duration>, fx: &mut Effects) {
        if self.ending.is_some() {
            return;
        }
        if let Some(g) = grace {
            self.grace = g;
        }
        for c in &self.record.main {
            if matches!(c.state, ContainerState::Running { .. }) {
                fx.event(EventType::Normal, "Killing", format!("Stopping container {}", c.name));
            }
        }
        self.kill(fx);
        let deleted = grace.is_some();
        self.ending = Some(Finish { write_status: deleted, delete_object: deleted, release: true });
        if !self.idle() {
            fx.arm(Timer::GracePeriod, self.grace + GRACE_SLACK);
        }
    }

    /// Stops every running instance with the current grace period; nothing new starts.
    fn kill(&mut self, fx: &mut Effects) {
        self.killing = true;
        let grace = self.grace;
        for i in 0..self.containers.len() {
            let kind = self.containers[i].kind;
            let pending = self.containers[i].pending.take();
            let r = self.record_mut(i);
            if pending == Some(Pending::Restart)
                && let Some(last) = r.last_terminated.clone()
            {
                r.state = last;
                fx.status();
            }
            if !matches!(r.state, ContainerState::Running { .. }) || self.containers[i].kill_sent {
                continue;
            }
            if kind == Some(ContainerKind::Http) {
                // An HTTP container stops taking requests while it drains.
                self.record_mut(i).ready = false;
                fx.status();
            }
            self.containers[i].kill_sent = true;
            fx.push(Effect::KillContainer { container: i, grace });
        }
    }

    pub(super) fn grace_period_over(&mut self, fx: &mut Effects) {
        if let Some(finish) = self.ending {
            self.stage = Stage::Finished;
            fx.push(Effect::Finish(finish));
        }
    }

    /// A deleted or gone pod finishes once nothing is under way.
    pub(super) fn finish_if_idle(&mut self, fx: &mut Effects) {
        if let Some(finish) = self.ending
            && self.stage != Stage::Finished
            && self.idle()
        {
            self.stage = Stage::Finished;
            fx.push(Effect::Finish(finish));
        }
    }

    /// A pod that ended in an earlier life: deleted (remove the object) or gone.
    pub(super) fn finish_ended(&mut self, deleted: bool) -> Vec<Effect> {
        self.stage = Stage::Finished;
        vec![Effect::Finish(Finish { write_status: false, delete_object: deleted, release: false })]
    }
}
