//! Table tests of `step`: every transition the pod worker makes, with the effects it asks
//! for, word for word.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

const CMD: ContainerKind = ContainerKind::Command;
const HTTP: ContainerKind = ContainerKind::Http;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Pod `p` in namespace `ns` (uid `u`); containers named as given, image `img-NAME`;
/// `extra` is merged into the spec.
fn spec(policy: &str, init: &[&str], main: &[&str], extra: Value) -> Spec {
    let list = |names: &[&str]| names.iter().map(|n| json!({"name": n, "image": format!("img-{n}")})).collect::<Vec<_>>();
    let mut pod = json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u"},
        "spec": {"restartPolicy": policy, "initContainers": list(init), "containers": list(main)},
        "status": {"phase": "Pending"},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        pod["spec"][k] = v.clone();
    }
    Spec::from_pod(&pod)
}

fn begin(spec: Spec) -> State {
    State::start(spec, Backoff::default(), Addresses { host_ip: "127.0.0.1".into(), pod_ip: "10.1.0.2".into() }, t(0)).0
}

fn status() -> Effect {
    Effect::WriteStatus { force: false }
}

fn normal(reason: &'static str, message: &str) -> Effect {
    Effect::RecordEvent { type_: EventType::Normal, reason, message: message.into() }
}

fn warning(reason: &'static str, message: &str) -> Effect {
    Effect::RecordEvent { type_: EventType::Warning, reason, message: message.into() }
}

fn arm(timer: Timer, after: Duration) -> Effect {
    Effect::ArmTimer { timer, after }
}

fn start(container: usize, kind: ContainerKind) -> Effect {
    Effect::StartContainer { container, kind }
}

fn kill(container: usize, grace: Duration) -> Effect {
    Effect::KillContainer { container, grace }
}

fn created_started(name: &str) -> [Effect; 3] {
    [status(), normal("Created", &format!("Created container: {name}")), normal("Started", &format!("Started container {name}"))]
}

const DELETED: Effect = Effect::Finish(Finish { write_status: true, delete_object: true, release: true });
const GONE: Effect = Effect::Finish(Finish { write_status: false, delete_object: false, release: true });

fn exited(container: usize, code: i32) -> Event {
    let reason = if code == 0 { ExitReason::Completed } else { ExitReason::Error };
    Event::ContainerExited { container, code, reason, message: String::new(), ran_for: secs(1) }
}

fn fired(timer: Timer) -> Event {
    Event::TimerFired(timer)
}

/// Feeds `events` in order (the n-th at time n + 1), checking each step's effects.
#[track_caller]
fn script(state: &mut State, steps: &[(Event, Vec<Effect>)]) {
    for (n, (event, want)) in steps.iter().enumerate() {
        let got = step(state, event.clone(), t(n as i64 + 1));
        assert_eq!(&got, want, "step {n}: {event:?}");
    }
}

/// Sets every container up (image from the node's cache); returns the last step's effects
/// (the first starts).
fn set_up(state: &mut State, kinds: &[ContainerKind]) -> Vec<Effect> {
    let mut last = step(state, Event::VolumesReady, t(0));
    for (i, kind) in kinds.iter().enumerate() {
        step(state, Event::ImagePulled { container: i, image_id: format!("id-{i}"), from_cache: true, took: ms(0) }, t(0));
        step(state, Event::Compiled { container: i, kind: *kind, took: None }, t(0));
        last = step(state, Event::Configured { container: i }, t(0));
    }
    last
}

/// Reports every container that `effects` start as started.
fn start_all(state: &mut State, effects: &[Effect]) {
    for e in effects {
        if let Effect::StartContainer { container, .. } = e {
            step(state, Event::ContainerStarted { container: *container }, t(0));
        }
    }
}

/// A pod whose containers (no init containers) are set up and started.
fn running(policy: &str, main: &[(&str, ContainerKind)], extra: Value) -> State {
    let names: Vec<&str> = main.iter().map(|(n, _)| *n).collect();
    let kinds: Vec<ContainerKind> = main.iter().map(|(_, k)| *k).collect();
    let mut state = begin(spec(policy, &[], &names, extra));
    let fx = set_up(&mut state, &kinds);
    start_all(&mut state, &fx);
    state
}

fn waiting(state: &State, i: usize) -> (String, String) {
    match &state.record(i).state {
        ContainerState::Waiting { reason, message } => (reason.clone(), message.clone()),
        other => panic!("container {i} is not waiting: {other:?}"),
    }
}

fn terminated(state: &State, i: usize) -> (i32, String) {
    match &state.record(i).state {
        ContainerState::Terminated { exit_code, reason, .. } => (*exit_code, reason.clone()),
        other => panic!("container {i} is not terminated: {other:?}"),
    }
}

fn phase_of(state: &State) -> &'static str {
    phase(&state.record, &state.spec.restart_policy)
}

// ---- start ----

#[test]
fn start_reports_prepares_volumes_and_arms_the_deadline() {
    for (init, extra, want_fx, want_reason) in [
        (&[][..], json!({}), vec![status(), Effect::PrepareVolumes], "ContainerCreating"),
        (&[][..], json!({"activeDeadlineSeconds": 7}), vec![status(), Effect::PrepareVolumes, arm(Timer::ActiveDeadline, secs(7))], "ContainerCreating"),
        (&["i"][..], json!({}), vec![status(), Effect::PrepareVolumes], "PodInitializing"),
    ] {
        let (state, fx) = State::start(spec("Always", init, &["a"], extra), Backoff::default(), Addresses::default(), t(0));
        assert_eq!(fx, want_fx);
        assert_eq!(waiting(&state, init.len()).0, want_reason);
        assert_eq!(state.record.initialized, init.is_empty());
        assert_eq!(state.record.start_time, Some(t(0)));
        assert_eq!(phase_of(&state), "Pending");
    }
}

// ---- set-up ----

#[test]
fn set_up_goes_container_by_container_init_containers_first() {
    let mut state = begin(spec("Always", &["i"], &["a"], json!({})));
    script(
        &mut state,
        &[
            (Event::VolumesReady, vec![Effect::PullImage { container: 0 }]),
            (
                Event::ImagePulled { container: 0, image_id: "img-i@sha256:1".into(), from_cache: true, took: ms(3) },
                vec![normal("Pulled", "Container image \"img-i\" already present on machine"), status(), Effect::Compile { container: 0 }],
            ),
            (Event::Compiled { container: 0, kind: CMD, took: None }, vec![Effect::Configure { container: 0 }]),
            (Event::Configured { container: 0 }, vec![Effect::PullImage { container: 1 }]),
            (
                Event::ImagePulled { container: 1, image_id: "img-a@sha256:2".into(), from_cache: false, took: ms(1234) },
                vec![
                    normal("Pulling", "Pulling image \"img-a\""),
                    normal("Pulled", "Successfully pulled image \"img-a\" in 1234ms"),
                    status(),
                    Effect::Compile { container: 1 },
                ],
            ),
            (
                Event::Compiled { container: 1, kind: HTTP, took: Some(ms(1500)) },
                vec![normal("Compiled", "Compiled image \"img-a\" in 1500ms (its first start on this node)"), Effect::Configure { container: 1 }],
            ),
            (Event::Configured { container: 1 }, vec![start(0, CMD)]),
        ],
    );
    assert_eq!((state.record(0).image_id.as_str(), state.record(1).image_id.as_str()), ("img-i@sha256:1", "img-a@sha256:2"));
}

#[test]
fn without_init_containers_all_containers_start_together() {
    let mut state = begin(spec("Always", &[], &["a", "b"], json!({})));
    let fx = set_up(&mut state, &[HTTP, CMD]);
    assert_eq!(fx, vec![status(), start(0, HTTP), start(1, CMD)]);
    assert!(state.record.initialized);
}

#[test]
fn volumes_are_set_up_again_until_they_can_be() {
    let mut state = begin(spec("Always", &[], &["a"], json!({})));
    let message = "MountVolume.SetUp failed for volume \"t\" : failed to fetch token: serviceaccounts \"default\" not found";
    script(
        &mut state,
        &[
            (Event::VolumesFailed { message: message.into() }, vec![status(), warning("FailedMount", message), arm(Timer::VolumeRetry, secs(2))]),
            (fired(Timer::VolumeRetry), vec![Effect::PrepareVolumes]),
            // A second timer while they are being prepared does nothing.
            (fired(Timer::VolumeRetry), vec![]),
        ],
    );
    let fx = set_up(&mut state, &[CMD]);
    assert_eq!(fx, vec![status(), start(0, CMD)]);
}

#[test]
fn projected_tokens_are_fetched_again_every_quarter_of_their_lifetime() {
    let volumes = json!({"volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3600, "path": "token"}}]}}]});
    let mut state = begin(spec("Always", &[], &["a"], volumes));
    let fx = step(&mut state, Event::VolumesReady, t(1));
    assert_eq!(fx.first(), Some(&arm(Timer::TokenRefresh, secs(900))), "{fx:?}");
    script(&mut state, &[(fired(Timer::TokenRefresh), vec![Effect::RefreshTokens, arm(Timer::TokenRefresh, secs(900))])]);
    // A pod being deleted fetches no more.
    step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(5));
    assert_eq!(step(&mut state, fired(Timer::TokenRefresh), t(6)), vec![]);
    // Without a projected token, no refresh is ever armed.
    let mut plain = begin(spec("Always", &[], &["a"], json!({})));
    assert!(!step(&mut plain, Event::VolumesReady, t(1)).contains(&arm(Timer::TokenRefresh, secs(900))));
}

#[test]
fn volume_failure_blocks_every_container() {
    let mut state = begin(spec("Always", &["i"], &["a"], json!({})));
    let message = "MountVolume.SetUp failed for volume \"cfg\" : configmap \"cfg\" not found";
    script(&mut state, &[(Event::VolumesFailed { message: message.into() }, vec![status(), warning("FailedMount", message), arm(Timer::VolumeRetry, secs(2))])]);
    for i in 0..2 {
        assert_eq!(waiting(&state, i), ("CreateContainerConfigError".into(), message.into()));
    }
    // Nothing is under way: a delete finishes at once.
    assert_eq!(step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(9)), vec![DELETED]);
}

#[test]
fn pull_failures_show_their_reason_and_only_err_image_pull_retries() {
    for (error, retry) in [
        (PullError::InvalidImageName("couldn't parse image name \"img-a\": invalid reference format".into()), None),
        (PullError::ErrImageNeverPull("Container image \"img-a\" is not present with pull policy of Never".into()), None),
        (PullError::ErrImagePull("manifest unknown".into()), Some(ms(500))),
    ] {
        let mut state = begin(spec("Always", &[], &["a"], json!({})));
        step(&mut state, Event::VolumesReady, t(0));
        let (reason, message) = (error.reason(), error.message().to_string());
        let mut want = vec![
            normal("Pulling", "Pulling image \"img-a\""),
            status(),
            warning("Failed", &format!("Failed to pull image \"img-a\": {message}")),
            warning("Failed", &format!("Error: {reason}")),
        ];
        if let Some(after) = retry {
            want.push(arm(Timer::PullBackOff(0), after));
        }
        assert_eq!(step(&mut state, Event::ImagePullFailed { container: 0, error: error.clone() }, t(1)), want, "{reason}");
        assert_eq!(waiting(&state, 0), (reason.to_string(), message));
        assert_eq!(phase_of(&state), "Pending");
    }
}

#[test]
fn image_pull_back_off_shows_then_retries_with_doubling_delay() {
    let mut state = begin(spec("Always", &[], &["a"], json!({})));
    step(&mut state, Event::VolumesReady, t(0));
    let failed = Event::ImagePullFailed { container: 0, error: PullError::ErrImagePull("manifest unknown".into()) };
    let backoff_shown = vec![status(), normal("BackOff", "Back-off pulling image \"img-a\"")];
    let failed_fx = |after: Duration| {
        vec![
            normal("Pulling", "Pulling image \"img-a\""),
            status(),
            warning("Failed", "Failed to pull image \"img-a\": manifest unknown"),
            warning("Failed", "Error: ErrImagePull"),
            arm(Timer::PullBackOff(0), after),
        ]
    };
    let with = |mut fx: Vec<Effect>, e: Effect| {
        fx.push(e);
        fx
    };
    script(
        &mut state,
        &[
            (failed.clone(), failed_fx(ms(500))),
            (fired(Timer::PullBackOff(0)), with(backoff_shown.clone(), arm(Timer::PullRetry(0), secs(10)))),
            (fired(Timer::PullRetry(0)), vec![Effect::PullImage { container: 0 }]),
            (failed.clone(), failed_fx(ms(500))),
            (fired(Timer::PullBackOff(0)), with(backoff_shown.clone(), arm(Timer::PullRetry(0), secs(20)))),
            // A timer that is not awaited changes nothing.
            (fired(Timer::PullBackOff(0)), vec![]),
        ],
    );
    assert_eq!(waiting(&state, 0), ("ImagePullBackOff".into(), "Back-off pulling image \"img-a\"".into()));

    // A back-off shorter than 500 ms shows at once.
    let mut state = State::start(spec("Always", &[], &["a"], json!({})), Backoff { base: ms(200), ..Backoff::default() }, Addresses::default(), t(0)).0;
    step(&mut state, Event::VolumesReady, t(0));
    assert_eq!(step(&mut state, failed, t(1)).last(), Some(&arm(Timer::PullBackOff(0), ms(200))));
}

#[test]
fn compile_failure_is_create_container_error_for_good() {
    let mut state = begin(spec("Always", &[], &["a", "b"], json!({})));
    step(&mut state, Event::VolumesReady, t(0));
    step(&mut state, Event::ImagePulled { container: 0, image_id: "x".into(), from_cache: true, took: ms(0) }, t(0));
    let message = "failed to compile image \"img-a\": invalid wasm: not a WebAssembly binary (missing \\0asm header)";
    script(
        &mut state,
        &[(
            Event::CompileFailed { container: 0, message: "invalid wasm: not a WebAssembly binary (missing \\0asm header)".into() },
            vec![status(), warning("Failed", &format!("Error: {message}"))],
        )],
    );
    assert_eq!(waiting(&state, 0), ("CreateContainerError".into(), message.into()));
    // b is never set up.
    assert_eq!(waiting(&state, 1).0, "ContainerCreating");
    assert_eq!(step(&mut state, Event::Gone, t(9)), vec![GONE]);
}

#[test]
fn config_failures_retry_every_two_seconds_unless_the_spec_is_wrong() {
    for (retry, then) in [(true, vec![arm(Timer::ConfigRetry(0), secs(2))]), (false, vec![])] {
        let mut state = begin(spec("Always", &[], &["a"], json!({})));
        step(&mut state, Event::VolumesReady, t(0));
        step(&mut state, Event::ImagePulled { container: 0, image_id: "x".into(), from_cache: true, took: ms(0) }, t(0));
        step(&mut state, Event::Compiled { container: 0, kind: CMD, took: None }, t(0));
        let message = "configmap \"cfg\" not found";
        let mut want = vec![status(), warning("Failed", &format!("Error: {message}"))];
        want.extend(then);
        script(&mut state, &[(Event::ConfigFailed { container: 0, message: message.into(), retry }, want)]);
        assert_eq!(waiting(&state, 0), ("CreateContainerConfigError".into(), message.into()));
        let again = if retry { vec![Effect::Configure { container: 0 }] } else { vec![] };
        assert_eq!(step(&mut state, fired(Timer::ConfigRetry(0)), t(3)), again, "retry {retry}");
    }
}

#[test]
fn setup_aborted_starts_nothing() {
    let mut state = begin(spec("Always", &[], &["a", "b"], json!({})));
    step(&mut state, Event::VolumesReady, t(0));
    step(&mut state, Event::ImagePulled { container: 0, image_id: "x".into(), from_cache: true, took: ms(0) }, t(0));
    assert_eq!(step(&mut state, Event::SetupAborted { container: 0 }, t(1)), vec![]);
    assert_eq!(step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(2)), vec![DELETED]);
}

// ---- running ----

#[test]
fn a_started_container_runs_and_is_ready_unless_it_is_an_init_container() {
    for (init, main, i, ready) in [(&[][..], &["a"][..], 0, true), (&["i"][..], &["a"][..], 0, false)] {
        let mut state = begin(spec("Always", init, main, json!({})));
        let fx = set_up(&mut state, &[CMD, CMD][..init.len() + main.len()]);
        assert_eq!(fx.last(), Some(&start(i, CMD)));
        let name = &state.spec.containers[i].name.clone();
        script(&mut state, &[(Event::ContainerStarted { container: i }, created_started(name).to_vec())]);
        let r = state.record(i);
        assert_eq!((&r.state, r.ready, r.container_id.as_str()), (&ContainerState::Running { started_at: t(1) }, ready, format!("wasm://u/{name}/0").as_str()));
    }
}

#[test]
fn an_http_container_that_cannot_serve_is_create_container_error() {
    let mut state = begin(spec("Always", &[], &["web"], json!({})));
    set_up(&mut state, &[HTTP]);
    let message = "mount source /x: No such file or directory (os error 2)";
    script(&mut state, &[(Event::StartFailed { container: 0, message: message.into() }, vec![status(), warning("Failed", &format!("Error: {message}"))])]);
    assert_eq!(waiting(&state, 0), ("CreateContainerError".into(), message.into()));
}

#[test]
fn restart_policy_decides_whether_an_exited_container_runs_again() {
    let back_off = || {
        vec![
            status(),
            warning("BackOff", "Back-off restarting failed container a in pod p_ns(u)"),
            arm(Timer::Restart(0), secs(10)),
        ]
    };
    for (policy, code, want) in [
        ("Always", 0, back_off()),
        ("Always", 2, back_off()),
        ("OnFailure", 2, back_off()),
        ("OnFailure", 0, vec![status()]),
        ("Never", 0, vec![status()]),
        ("Never", 2, vec![status(), warning("Failed", "Container a failed: Error (exit code 2)")]),
    ] {
        let mut state = running(policy, &[("a", CMD)], json!({}));
        assert_eq!(step(&mut state, exited(0, code), t(5)), want, "{policy} exit {code}");
        let r = state.record(0);
        assert!(!r.ready);
        let reason = if code == 0 { "Completed" } else { "Error" };
        let last = ContainerState::Terminated { exit_code: code, reason: reason.into(), message: String::new(), started_at: t(0), finished_at: t(5) };
        if want.len() == 3 {
            assert_eq!(r.state, ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: "back-off 10s restarting failed container=a pod=p_ns(u)".into() });
            assert_eq!(r.last_terminated, Some(last));
            assert_eq!(phase_of(&state), "Running", "{policy} exit {code}");
        } else {
            assert_eq!(r.state, last);
            assert_eq!(r.last_terminated, None);
            assert_eq!(phase_of(&state), if code == 0 { "Succeeded" } else { "Failed" }, "{policy} exit {code}");
        }
    }
}

#[test]
fn restarts_count_up_with_back_off_doubling_and_resetting_after_a_long_run() {
    let mut state = running("Always", &[("a", CMD)], json!({}));
    let exit_after = |ran_for: Duration| Event::ContainerExited { container: 0, code: 1, reason: ExitReason::Error, message: String::new(), ran_for };
    for (n, (ran_for, delay)) in [(secs(1), 10), (secs(1), 20), (secs(1), 40), (secs(600), 10), (secs(1), 20)].into_iter().enumerate() {
        let fx = step(&mut state, exit_after(ran_for), t(10 * n as i64));
        assert_eq!(fx.last(), Some(&arm(Timer::Restart(0), secs(delay))), "exit {n}");
        assert_eq!(waiting(&state, 0).1, format!("back-off {delay}s restarting failed container=a pod=p_ns(u)"));
        assert_eq!(state.record(0).restart_count, n as u32, "counted at the restart, not the exit");
        assert_eq!(step(&mut state, fired(Timer::Restart(0)), t(10 * n as i64 + 5)), vec![status(), start(0, CMD)]);
        assert_eq!(state.record(0).restart_count, n as u32 + 1);
        step(&mut state, Event::ContainerStarted { container: 0 }, t(10 * n as i64 + 5));
        assert_eq!(state.record(0).container_id, format!("wasm://u/a/{}", n + 1));
    }
}

#[test]
fn exit_reasons_and_failure_messages() {
    for (reason, code, message, want_reason, want_event) in [
        (ExitReason::Completed, 0, "", "Completed", None),
        (ExitReason::Error, 3, "", "Error", Some("Container a failed: Error (exit code 3)")),
        (ExitReason::Error, 134, "wasm trap: unreachable", "Error", Some("Container a failed: wasm trap: unreachable (exit code 134)")),
        (ExitReason::OOMKilled, 137, "memory limit exceeded", "OOMKilled", Some("Container a failed: memory limit exceeded (exit code 137)")),
        (ExitReason::Killed, 137, "", "Error", Some("Container a failed: Error (exit code 137)")),
    ] {
        let mut state = running("Never", &[("a", CMD)], json!({}));
        let fx = step(&mut state, Event::ContainerExited { container: 0, code, reason, message: message.into(), ran_for: secs(1) }, t(2));
        let mut want = vec![status()];
        want.extend(want_event.map(|m| warning("Failed", m)));
        assert_eq!(fx, want);
        assert_eq!(terminated(&state, 0), (code, want_reason.to_string()));
    }
}

#[test]
fn init_containers_run_one_at_a_time_then_the_containers_start() {
    let mut state = begin(spec("Never", &["i1", "i2"], &["a", "b"], json!({})));
    assert_eq!(set_up(&mut state, &[CMD, HTTP, HTTP, CMD]), vec![start(0, CMD)]);
    let mut main_start = vec![status()];
    main_start.extend([start(2, HTTP), start(3, CMD)]);
    script(
        &mut state,
        &[
            (Event::ContainerStarted { container: 0 }, created_started("i1").to_vec()),
            (exited(0, 0), vec![status(), start(1, CMD)]),
            // An init container runs to completion whatever its image is.
            (Event::ContainerStarted { container: 1 }, created_started("i2").to_vec()),
            (exited(1, 0), main_start),
        ],
    );
    assert!(state.record.initialized);
    assert_eq!((waiting(&state, 2).0.as_str(), waiting(&state, 3).0.as_str()), ("ContainerCreating", "ContainerCreating"));
    assert_eq!(terminated(&state, 0), (0, "Completed".into()));
    assert_eq!(phase_of(&state), "Pending");
    start_all(&mut state, &[start(2, HTTP), start(3, CMD)]);
    assert_eq!(phase_of(&state), "Running");
}

#[test]
fn a_failed_init_container_restarts_or_fails_the_pod_per_policy() {
    for (policy, restarted, phase_after) in [("Never", false, "Failed"), ("OnFailure", true, "Pending"), ("Always", true, "Pending")] {
        let mut state = begin(spec(policy, &["i"], &["a"], json!({})));
        let fx = set_up(&mut state, &[CMD, CMD]);
        start_all(&mut state, &fx);
        let fx = step(&mut state, exited(0, 7), t(3));
        if restarted {
            assert_eq!(fx, vec![status(), warning("BackOff", "Back-off restarting failed container i in pod p_ns(u)"), arm(Timer::Restart(0), secs(10))], "{policy}");
            assert_eq!(waiting(&state, 0).0, "CrashLoopBackOff");
            assert_eq!(step(&mut state, fired(Timer::Restart(0)), t(4)), vec![status(), start(0, CMD)], "{policy}");
            assert_eq!(state.record(0).restart_count, 1);
        } else {
            assert_eq!(fx, vec![status(), warning("Failed", "Container i failed: Error (exit code 7)")], "{policy}");
            assert_eq!(terminated(&state, 0), (7, "Error".into()));
        }
        assert_eq!(phase_of(&state), phase_after, "{policy}");
        // The main container never started.
        assert_eq!(waiting(&state, 1).0, "PodInitializing", "{policy}");
        assert!(!state.record.initialized);
    }
    // A successful init container is not run again, even under Always.
    let mut state = begin(spec("Always", &["i"], &["a"], json!({})));
    let fx = set_up(&mut state, &[CMD, CMD]);
    start_all(&mut state, &fx);
    assert_eq!(step(&mut state, exited(0, 0), t(3)), vec![status(), start(1, CMD)]);
}

#[test]
fn pod_phase_when_the_containers_are_done() {
    // (policy, exit codes of two containers, phase)
    for (policy, codes, want) in [
        ("Never", [0, 0], "Succeeded"),
        ("Never", [0, 3], "Failed"),
        ("OnFailure", [0, 0], "Succeeded"),
        ("OnFailure", [0, 3], "Running"),
        ("Always", [0, 0], "Running"),
    ] {
        let mut state = running(policy, &[("a", CMD), ("b", CMD)], json!({}));
        step(&mut state, exited(0, codes[0]), t(1));
        assert_eq!(phase_of(&state), "Running", "{policy} {codes:?}: one still runs");
        step(&mut state, exited(1, codes[1]), t(2));
        assert_eq!(phase_of(&state), want, "{policy} {codes:?}");
        let status = state.status(t(3));
        assert_eq!(status["phase"], want);
        assert_eq!(status["conditions"][3]["status"], "False");
    }
}

// ---- termination ----

#[test]
fn active_deadline_fails_the_pod_and_kills_its_containers_at_once() {
    let mut state = running("Always", &[("web", HTTP), ("cmd", CMD)], json!({"activeDeadlineSeconds": 5}));
    let message = "Pod was active on the node longer than the specified deadline";
    script(
        &mut state,
        &[
            (fired(Timer::ActiveDeadline), vec![status(), normal("DeadlineExceeded", message), kill(0, secs(0)), kill(1, secs(0))]),
            // Killed containers are not restarted and raise no Failed event.
            (Event::ContainerExited { container: 1, code: 137, reason: ExitReason::Killed, message: String::new(), ran_for: secs(5) }, vec![status()]),
            (exited(0, 0), vec![status()]),
            // The deadline counts once.
            (fired(Timer::ActiveDeadline), vec![]),
        ],
    );
    assert_eq!(phase_of(&state), "Failed");
    let status = state.status(t(9));
    assert_eq!((status["reason"].as_str(), status["message"].as_str()), (Some("DeadlineExceeded"), Some(message)));
    assert_eq!(terminated(&state, 0), (0, "Completed".into()));
    // The worker stays until the pod is deleted.
    assert_eq!(step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(10)), vec![DELETED]);
}

#[test]
fn graceful_delete_kills_with_the_grace_period_then_finishes() {
    let mut state = running("Always", &[("web", HTTP), ("cmd", CMD)], json!({}));
    script(
        &mut state,
        &[
            (
                Event::DeleteRequested { grace: secs(10) },
                vec![
                    normal("Killing", "Stopping container web"),
                    normal("Killing", "Stopping container cmd"),
                    status(),
                    kill(0, secs(10)),
                    kill(1, secs(10)),
                    arm(Timer::GracePeriod, secs(15)),
                ],
            ),
            // A second delete (or any update) changes nothing.
            (Event::DeleteRequested { grace: secs(1) }, vec![]),
            (Event::PodUpdated { ready: Some("False".into()) }, vec![]),
            (exited(1, 0), vec![status()]),
            (exited(0, 0), vec![status(), DELETED]),
            (fired(Timer::GracePeriod), vec![]),
        ],
    );
    // The HTTP container stopped taking requests when the kill came.
    assert!(!state.record(0).ready);
    assert_eq!(terminated(&state, 1), (0, "Completed".into()));
}

#[test]
fn delete_of_an_idle_pod_finishes_at_once() {
    let mut state = running("Never", &[("a", CMD)], json!({}));
    step(&mut state, exited(0, 0), t(1));
    assert_eq!(step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(2)), vec![DELETED]);
    assert_eq!(step(&mut state, exited(0, 0), t(3)), vec![], "nothing after Finish");
}

#[test]
fn delete_during_restart_back_off_shows_the_last_termination() {
    let mut state = running("Always", &[("a", CMD)], json!({}));
    step(&mut state, exited(0, 4), t(1));
    assert_eq!(waiting(&state, 0).0, "CrashLoopBackOff");
    assert_eq!(step(&mut state, Event::DeleteRequested { grace: secs(30) }, t(2)), vec![status(), DELETED]);
    assert_eq!(terminated(&state, 0), (4, "Error".into()));
    assert_eq!(step(&mut state, fired(Timer::Restart(0)), t(11)), vec![]);
}

#[test]
fn grace_period_over_finishes_whatever_still_runs() {
    let mut state = running("Always", &[("web", HTTP)], json!({"terminationGracePeriodSeconds": 3}));
    let fx = step(&mut state, Event::DeleteRequested { grace: secs(2) }, t(1));
    assert_eq!(fx.last(), Some(&arm(Timer::GracePeriod, secs(7))));
    assert_eq!(step(&mut state, fired(Timer::GracePeriod), t(8)), vec![DELETED]);
}

#[test]
fn gone_kills_with_the_spec_grace_period_and_writes_nothing() {
    let mut state = running("Always", &[("cmd", CMD)], json!({"terminationGracePeriodSeconds": 3}));
    script(
        &mut state,
        &[
            (Event::Gone, vec![normal("Killing", "Stopping container cmd"), kill(0, secs(3)), arm(Timer::GracePeriod, secs(8))]),
            (exited(0, 137), vec![status(), GONE]),
        ],
    );
}

#[test]
fn delete_during_set_up_waits_for_the_step_under_way_and_starts_nothing() {
    let mut state = begin(spec("Always", &[], &["a"], json!({})));
    step(&mut state, Event::VolumesReady, t(0));
    script(
        &mut state,
        &[
            (Event::DeleteRequested { grace: secs(30) }, vec![arm(Timer::GracePeriod, secs(35))]),
            (
                Event::ImagePulled { container: 0, image_id: "x".into(), from_cache: true, took: ms(0) },
                vec![normal("Pulled", "Container image \"img-a\" already present on machine"), status(), DELETED],
            ),
        ],
    );
    // Volumes under way, gone.
    let mut state = begin(spec("Always", &[], &["a"], json!({})));
    script(&mut state, &[(Event::Gone, vec![arm(Timer::GracePeriod, secs(35))]), (Event::VolumesReady, vec![GONE])]);
}

#[test]
fn delete_after_the_deadline_uses_the_delete_grace_and_kills_once() {
    let mut state = running("Always", &[("web", HTTP)], json!({"activeDeadlineSeconds": 5}));
    step(&mut state, fired(Timer::ActiveDeadline), t(5));
    script(
        &mut state,
        &[
            // web still drains: it is Running, already killed.
            (Event::DeleteRequested { grace: secs(30) }, vec![normal("Killing", "Stopping container web"), arm(Timer::GracePeriod, secs(35))]),
            (exited(0, 0), vec![status(), DELETED]),
        ],
    );
    // Gone after the deadline: the kill's grace period is 0.
    let mut state = running("Always", &[("web", HTTP)], json!({"activeDeadlineSeconds": 5}));
    step(&mut state, fired(Timer::ActiveDeadline), t(5));
    let fx = step(&mut state, Event::Gone, t(6));
    assert_eq!(fx.last(), Some(&arm(Timer::GracePeriod, secs(5))));
}

#[test]
fn a_pod_that_ended_earlier_only_awaits_deletion() {
    let ended = |deleting: bool| {
        let mut pod = json!({"metadata": {"namespace": "ns", "name": "p", "uid": "u"}, "spec": {"containers": [{"name": "a", "image": "i"}]}, "status": {"phase": "Succeeded"}});
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Spec::from_pod(&pod)
    };
    let removed = Effect::Finish(Finish { write_status: false, delete_object: true, release: false });
    let forgotten = Effect::Finish(Finish { write_status: false, delete_object: false, release: false });
    let (_, fx) = State::ended(ended(true));
    assert_eq!(fx, vec![removed.clone()]);
    for (event, want) in [(Event::DeleteRequested { grace: secs(30) }, vec![removed]), (Event::Gone, vec![forgotten])] {
        let (mut state, fx) = State::ended(ended(false));
        assert_eq!(fx, vec![]);
        script(&mut state, &[(Event::PodUpdated { ready: Some("False".into()) }, vec![]), (fired(Timer::ActiveDeadline), vec![]), (event, want)]);
    }
}

#[test]
fn a_ready_condition_set_by_someone_else_is_written_again() {
    for (ready, want) in [
        (Some("False"), vec![Effect::WriteStatus { force: true }]),
        (Some("Unknown"), vec![Effect::WriteStatus { force: true }]),
        (Some("True"), vec![]),
        (None, vec![]),
    ] {
        let mut state = running("Always", &[("a", CMD)], json!({}));
        assert_eq!(step(&mut state, Event::PodUpdated { ready: ready.map(str::to_string) }, t(1)), want, "{ready:?}");
    }
    // Not ready here, True in the API.
    let mut state = begin(spec("Always", &[], &["a"], json!({})));
    assert_eq!(step(&mut state, Event::PodUpdated { ready: Some("True".into()) }, t(1)), vec![Effect::WriteStatus { force: true }]);
}

// ---- probes ----

/// Pod `p` with one container `a` of `kind` whose spec also has `probes` (e.g.
/// `{"livenessProbe": {...}}`), set up; returns it and the effects of its start.
fn probed(policy: &str, kind: ContainerKind, probes: Value) -> (State, Vec<Effect>) {
    let mut c = json!({"name": "a", "image": "img-a", "ports": [{"name": "http", "containerPort": 8080}]});
    for (k, v) in probes.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    let pod = json!({
        "metadata": {"namespace": "ns", "name": "p", "uid": "u"},
        "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 30, "containers": [c]},
        "status": {"phase": "Pending"},
    });
    let mut state = begin(Spec::from_pod(&pod));
    set_up(&mut state, &[kind]);
    let fx = step(&mut state, Event::ContainerStarted { container: 0 }, t(0));
    (state, fx)
}

fn probe_timer(probe: ProbeKind, attempt: u32) -> Timer {
    Timer::Probe { container: 0, probe, attempt }
}

fn run_probe(probe: ProbeKind, attempt: u32) -> Effect {
    Effect::RunProbe { container: 0, probe, attempt }
}

fn result(probe: ProbeKind, attempt: u32, outcome: ProbeOutcome) -> Event {
    Event::ProbeResult { container: 0, probe, attempt, outcome }
}

fn failed(text: &str) -> ProbeOutcome {
    ProbeOutcome::Failure(text.into())
}

const HTTP_500: &str = "HTTP probe failed with statuscode: 500";

fn with(mut fx: Vec<Effect>, more: impl IntoIterator<Item = Effect>) -> Vec<Effect> {
    fx.extend(more);
    fx
}

#[test]
fn probes_are_read_with_kubernetes_defaults() {
    use ProbeKind::*;
    let c = json!({
        "name": "a",
        "ports": [{"name": "web", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"port": "web", "path": "healthz", "httpHeaders": [{"name": "X-A", "value": "1"}]}, "successThreshold": 5, "terminationGracePeriodSeconds": 2},
        "readinessProbe": {"tcpSocket": {"port": 7000}, "initialDelaySeconds": 3, "periodSeconds": 4, "timeoutSeconds": 5, "successThreshold": 2, "failureThreshold": 6},
        "startupProbe": {"grpc": {"port": 9000}},
    });
    let probes = Probes::from_container(&c);
    let live = probes.get(Liveness).expect("liveness");
    assert_eq!(
        live.handler,
        Handler::HttpGet { scheme: "HTTP".into(), host: String::new(), port: 8080, path: "/healthz".into(), headers: vec![("X-A".into(), "1".into())] }
    );
    assert_eq!((live.initial_delay, live.period, live.timeout, live.success_threshold, live.failure_threshold), (secs(0), secs(10), secs(1), 1, 3));
    assert_eq!(live.grace, Some(secs(2)));
    let ready = probes.get(Readiness).expect("readiness");
    assert_eq!(ready.handler, Handler::TcpSocket { host: String::new(), port: 7000 });
    assert_eq!((ready.initial_delay, ready.period, ready.timeout, ready.success_threshold, ready.failure_threshold), (secs(3), secs(4), secs(5), 2, 6));
    assert_eq!(probes.get(Startup).expect("startup").handler, Handler::Grpc { port: 9000, service: String::new() });
    let c = json!({"name": "a", "livenessProbe": {"tcpSocket": {"port": "nope"}}, "readinessProbe": {"exec": {"command": ["check", "-v"]}}});
    let probes = Probes::from_container(&c);
    assert_eq!(probes.get(Liveness).expect("liveness").handler, Handler::Unsupported("port \"nope\" not found".into()));
    assert_eq!(probes.get(Readiness).expect("readiness").handler, Handler::Exec { command: vec!["check".into(), "-v".into()] });
    assert!(Probes::from_container(&json!({"name": "a"})).is_empty());
}

#[test]
fn readiness_probe_drives_ready_with_its_thresholds() {
    use ProbeKind::Readiness as R;
    let probe = json!({"readinessProbe": {"httpGet": {"port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 2, "successThreshold": 2, "failureThreshold": 2}});
    let (mut state, fx) = probed("Always", HTTP, probe);
    assert_eq!(fx, with(created_started("a").to_vec(), [arm(probe_timer(R, 0), secs(5))]));
    assert!(!state.record(0).ready, "not ready before its readiness probe succeeds");
    assert_eq!(phase_of(&state), "Running");
    let unhealthy = warning("Unhealthy", &format!("Readiness probe failed: {HTTP_500}"));
    script(
        &mut state,
        &[
            (fired(probe_timer(R, 0)), vec![run_probe(R, 0)]),
            (result(R, 0, failed(HTTP_500)), vec![unhealthy.clone(), arm(probe_timer(R, 0), secs(2))]),
            (result(R, 0, ProbeOutcome::Success), vec![arm(probe_timer(R, 0), secs(2))]),
            // successThreshold 2: ready at the second success in a row.
            (result(R, 0, ProbeOutcome::Success), vec![status(), arm(probe_timer(R, 0), secs(2))]),
            (result(R, 0, ProbeOutcome::Success), vec![arm(probe_timer(R, 0), secs(2))]),
        ],
    );
    assert!(state.record(0).ready && state.record.containers_ready());
    script(
        &mut state,
        &[
            (result(R, 0, failed(HTTP_500)), vec![unhealthy.clone(), arm(probe_timer(R, 0), secs(2))]),
            // failureThreshold 2: not ready at the second failure in a row; never killed.
            (result(R, 0, failed(HTTP_500)), vec![unhealthy.clone(), status(), arm(probe_timer(R, 0), secs(2))]),
            (result(R, 0, failed(HTTP_500)), vec![unhealthy, arm(probe_timer(R, 0), secs(2))]),
        ],
    );
    assert!(!state.record(0).ready && state.record(0).is_running());
    let s = state.status(t(9));
    assert_eq!(s["conditions"][3]["status"], "False");
    assert_eq!(s["conditions"][3]["message"], "containers with unready status: [a]");
    assert_eq!(s["containerStatuses"][0]["started"], true);
}

#[test]
fn an_errored_probe_counts_neither_way() {
    use ProbeKind::Liveness as L;
    let (mut state, _) = probed("Always", HTTP, json!({"livenessProbe": {"tcpSocket": {"port": "nope"}, "failureThreshold": 1}}));
    let why = "port \"nope\" not found";
    script(
        &mut state,
        &[(
            result(L, 0, ProbeOutcome::Error(why.into())),
            vec![warning("Unhealthy", &format!("Liveness probe errored and resulted in unknown state: {why}")), arm(probe_timer(L, 0), secs(10))],
        )],
    );
    assert!(state.record(0).is_running() && state.record(0).ready);
}

#[test]
fn liveness_failures_kill_the_container_which_restarts_with_back_off() {
    use ProbeKind::Liveness as L;
    let probe = json!({"livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 3, "failureThreshold": 2, "initialDelaySeconds": 1}});
    let (mut state, fx) = probed("Always", HTTP, probe);
    assert_eq!(fx, with(created_started("a").to_vec(), [arm(probe_timer(L, 0), secs(1))]));
    assert!(state.record(0).ready, "ready without a readiness probe");
    let refused = "dial tcp 10.1.0.2:8080: connect: connection refused";
    let unhealthy = warning("Unhealthy", &format!("Liveness probe failed: {refused}"));
    let killing = normal("Killing", "Container a failed liveness probe, will be restarted");
    script(
        &mut state,
        &[
            (fired(probe_timer(L, 0)), vec![run_probe(L, 0)]),
            (result(L, 0, ProbeOutcome::Success), vec![arm(probe_timer(L, 0), secs(3))]),
            (result(L, 0, failed(refused)), vec![unhealthy.clone(), arm(probe_timer(L, 0), secs(3))]),
            // A success in between starts the count again.
            (result(L, 0, ProbeOutcome::Success), vec![arm(probe_timer(L, 0), secs(3))]),
            (result(L, 0, failed(refused)), vec![unhealthy.clone(), arm(probe_timer(L, 0), secs(3))]),
            (result(L, 0, failed(refused)), vec![unhealthy.clone(), killing.clone(), status(), kill(0, secs(30))]),
            // Killed: its probes stop.
            (fired(probe_timer(L, 0)), vec![]),
            (result(L, 0, failed(refused)), vec![]),
        ],
    );
    assert!(!state.record(0).ready);
    // The kill's exit goes the way of a failure: CrashLoopBackOff, restart, new attempt.
    let backoff = warning("BackOff", "Back-off restarting failed container a in pod p_ns(u)");
    let fx = step(&mut state, exited(0, 0), t(20));
    assert_eq!(fx, vec![status(), backoff.clone(), arm(Timer::Restart(0), secs(10))]);
    assert_eq!(waiting(&state, 0).0, "CrashLoopBackOff");
    assert_eq!(terminated_last(&state), (0, "Completed".into()));
    assert_eq!(step(&mut state, fired(Timer::Restart(0)), t(30)), vec![status(), start(0, HTTP)]);
    assert_eq!(step(&mut state, Event::ContainerStarted { container: 0 }, t(31)), with(created_started("a").to_vec(), [arm(probe_timer(L, 1), secs(1))]));
    assert_eq!(state.record(0).restart_count, 1);
    // The first attempt's timers and results are stale.
    script(&mut state, &[(fired(probe_timer(L, 0)), vec![]), (result(L, 0, failed(refused)), vec![])]);
    // Killed again: the back-off doubles.
    script(
        &mut state,
        &[
            (result(L, 1, failed(refused)), vec![unhealthy.clone(), arm(probe_timer(L, 1), secs(3))]),
            (result(L, 1, failed(refused)), vec![unhealthy, killing, status(), kill(0, secs(30))]),
        ],
    );
    let fx = step(&mut state, Event::ContainerExited { container: 0, code: 137, reason: ExitReason::Killed, message: "killed".into(), ran_for: secs(4) }, t(40));
    assert_eq!(fx, vec![status(), backoff, arm(Timer::Restart(0), secs(20))]);
}

fn terminated_last(state: &State) -> (i32, String) {
    match &state.record(0).last_terminated {
        Some(ContainerState::Terminated { exit_code, reason, .. }) => (*exit_code, reason.clone()),
        other => panic!("no last termination: {other:?}"),
    }
}

#[test]
fn a_liveness_kill_under_restart_policy_never_ends_the_container() {
    use ProbeKind::Liveness as L;
    let probe = json!({"livenessProbe": {"exec": {"command": ["check"]}, "failureThreshold": 1, "terminationGracePeriodSeconds": 3}});
    let (mut state, _) = probed("Never", CMD, probe);
    script(
        &mut state,
        &[
            (
                result(L, 0, failed("")),
                vec![warning("Unhealthy", "Liveness probe failed: "), normal("Killing", "Container a failed liveness probe"), status(), kill(0, secs(3))],
            ),
            // No restart and no Failed event for a kill.
            (Event::ContainerExited { container: 0, code: 137, reason: ExitReason::Killed, message: "killed".into(), ran_for: secs(4) }, vec![status()]),
        ],
    );
    assert_eq!(terminated(&state, 0), (137, "Error".into()));
    assert_eq!(phase_of(&state), "Failed");
}

#[test]
fn the_startup_probe_holds_liveness_and_readiness_back_until_it_succeeds() {
    use ProbeKind::{Liveness as L, Readiness as R, Startup as S};
    let probe = json!({
        "startupProbe": {"httpGet": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"port": 8080}, "initialDelaySeconds": 10},
        "readinessProbe": {"httpGet": {"port": 8080}, "initialDelaySeconds": 2},
    });
    let (mut state, fx) = probed("Always", HTTP, probe);
    // Only the startup probe is armed; the container is neither started nor ready.
    assert_eq!(fx, with(created_started("a").to_vec(), [arm(probe_timer(S, 0), secs(0))]));
    let s = state.status(t(0));
    assert_eq!((s["containerStatuses"][0]["started"].clone(), s["containerStatuses"][0]["ready"].clone()), (json!(false), json!(false)));
    script(
        &mut state,
        &[
            (fired(probe_timer(S, 0)), vec![run_probe(S, 0)]),
            (result(S, 0, failed(HTTP_500)), vec![warning("Unhealthy", &format!("Startup probe failed: {HTTP_500}")), arm(probe_timer(S, 0), secs(1))]),
            (fired(probe_timer(S, 0)), vec![run_probe(S, 0)]),
        ],
    );
    // Succeeds 4 s after the start: liveness waits out the rest of its initial delay,
    // readiness (2 s) runs at once. Not ready until readiness succeeds.
    assert_eq!(
        step(&mut state, result(S, 0, ProbeOutcome::Success), t(4)),
        vec![status(), arm(probe_timer(L, 0), secs(6)), arm(probe_timer(R, 0), secs(0))]
    );
    let s = state.status(t(4));
    assert_eq!((s["containerStatuses"][0]["started"].clone(), s["containerStatuses"][0]["ready"].clone()), (json!(true), json!(false)));
    assert_eq!(step(&mut state, result(R, 0, ProbeOutcome::Success), t(5)), vec![status(), arm(probe_timer(R, 0), secs(10))]);
    assert!(state.record(0).ready);
    // A late startup timer changes nothing once started.
    assert_eq!(step(&mut state, result(S, 0, ProbeOutcome::Success), t(6)), vec![]);
}

#[test]
fn startup_probe_failures_kill_the_container_like_liveness() {
    use ProbeKind::Startup as S;
    let probe = json!({"startupProbe": {"tcpSocket": {"port": 7000}, "failureThreshold": 2}, "livenessProbe": {"tcpSocket": {"port": 7000}}});
    let (mut state, _) = probed("OnFailure", CMD, probe);
    let refused = "dial tcp 10.1.0.2:7000: connect: connection refused";
    let unhealthy = warning("Unhealthy", &format!("Startup probe failed: {refused}"));
    script(
        &mut state,
        &[
            (result(S, 0, failed(refused)), vec![unhealthy.clone(), arm(probe_timer(S, 0), secs(10))]),
            (result(S, 0, failed(refused)), vec![unhealthy, normal("Killing", "Container a failed startup probe, will be restarted"), status(), kill(0, secs(30))]),
        ],
    );
    // OnFailure restarts it even though a killed command's exit is its own.
    let fx = step(&mut state, Event::ContainerExited { container: 0, code: 137, reason: ExitReason::Killed, message: "killed".into(), ran_for: secs(20) }, t(30));
    assert_eq!(fx.last(), Some(&arm(Timer::Restart(0), secs(10))));
}

#[test]
fn probes_stop_when_the_pod_is_deleted() {
    use ProbeKind::Liveness as L;
    let (mut state, _) = probed("Always", HTTP, json!({"livenessProbe": {"httpGet": {"port": 8080}, "failureThreshold": 1}}));
    step(&mut state, Event::DeleteRequested { grace: secs(5) }, t(1));
    script(&mut state, &[(fired(probe_timer(L, 0)), vec![]), (result(L, 0, failed(HTTP_500)), vec![])]);
    // The exit after the delete's kill is not restarted.
    let fx = step(&mut state, exited(0, 0), t(3));
    assert!(fx.contains(&DELETED), "{fx:?}");
}

#[test]
fn a_probe_kill_then_a_delete_does_not_restart() {
    use ProbeKind::Liveness as L;
    let (mut state, _) = probed("Always", HTTP, json!({"livenessProbe": {"httpGet": {"port": 8080}, "failureThreshold": 1}}));
    step(&mut state, result(L, 0, failed(HTTP_500)), t(1));
    let fx = step(&mut state, Event::DeleteRequested { grace: secs(5) }, t(2));
    assert!(!fx.iter().any(|e| matches!(e, Effect::KillContainer { .. })), "killed once: {fx:?}");
    let fx = step(&mut state, exited(0, 0), t(3));
    assert!(fx.contains(&DELETED), "{fx:?}");
}
