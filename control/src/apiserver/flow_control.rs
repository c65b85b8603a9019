//! Per-user request limits, like API Priority and Fairness with one flow per user: a user
//! outside system:masters and system:nodes (Kubernetes gives nodes their own, larger
//! priority level; a node starting a thousand pods asks for a thousand tokens and writes a
//! thousand statuses, which must not wait behind a tenant's limit) may start [`FlowControlConfig::rate`] requests a second (a token
//! bucket holding [`FlowControlConfig::burst`]) and have [`FlowControlConfig::max_in_flight`]
//! being served at once; beyond either, 429 TooManyRequests with Retry-After (seconds),
//! worded as Kubernetes words it. Users are independent: one user's flood never refuses
//! another's requests. Requests without a user (refused with 401 further in) pass.
//!
//! A request holds its in-flight slot until its response head is ready, so an established
//! watch, log stream, exec, attach, port-forward or proxy no longer counts, as in
//! Kubernetes.
//!
//! Invariant: the map of users stays bounded ([`FlowControlConfig::max_users`]). When it is
//! full, users whose bucket has refilled and who have nothing in flight are forgotten first
//! (forgetting them changes nothing), then users with nothing in flight (they start again
//! with a full bucket); users with requests in flight are kept, so their slots are returned
//! to the entry that counted them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::auth::{MASTERS, User};
use super::error::ApiError;

/// The limits (defaults: 100 requests/s, a burst of 100, 32 in flight, 10,000 users
/// remembered).
#[derive(Clone, Debug)]
pub struct FlowControlConfig {
    /// Requests a second a user may start, on average.
    pub rate: f64,
    /// Requests a user may start at once after being idle (the bucket's size).
    pub burst: f64,
    /// Requests of one user being served at once.
    pub max_in_flight: u32,
    /// Users remembered at once.
    pub max_users: usize,
}

impl FlowControlConfig {
    /// No per-user limits (benchmarks that measure one user's throughput).
    pub fn unlimited() -> Self {
        FlowControlConfig { rate: f64::INFINITY, burst: f64::INFINITY, max_in_flight: u32::MAX, max_users: 0 }
    }

    pub(crate) fn is_unlimited(&self) -> bool {
        self.rate.is_infinite() && self.max_in_flight == u32::MAX
    }
}

impl Default for FlowControlConfig {
    fn default() -> Self {
        FlowControlConfig { rate: 100.0, burst: 100.0, max_in_flight: 32, max_users: 10_000 }
    }
}

/// One user's bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was computed.
    at: Instant,
    in_flight: u32,
}

impl Bucket {
    fn refill(&mut self, now: Instant, c: &FlowControlConfig) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * c.rate).min(c.burst);
        self.at = self.at.max(now);
    }

    /// Whether forgetting this user changes nothing: the bucket is full again and nothing
    /// is in flight.
    fn idle(&self, now: Instant, c: &FlowControlConfig) -> bool {
        self.in_flight == 0 && self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * c.rate >= c.burst
    }
}

/// Why a request was refused: retry after this many seconds.
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub retry_after: u32,
    /// Too many in flight (else too many a second).
    pub in_flight: bool,
}

/// The per-user limiter.
#[derive(Debug)]
pub(crate) struct FlowControl {
    config: FlowControlConfig,
    users: Mutex<HashMap<String, Bucket>>,
}

/// A request in flight: returns its slot when dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    fc: Arc<FlowControl>,
    user: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut users = self.fc.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = users.get_mut(&self.user) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}

impl FlowControl {
    pub(crate) fn new(config: FlowControlConfig) -> Arc<FlowControl> {
        Arc::new(FlowControl { config, users: Mutex::new(HashMap::new()) })
    }

    /// Admits a request of `user` at `now`, or says when to retry.
    pub(crate) fn admit(self: &Arc<Self>, user: &str, now: Instant) -> Result<InFlight, Refused> {
        let c = &self.config;
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if !users.contains_key(user) && users.len() >= c.max_users {
            users.retain(|_, b| !b.idle(now, c));
            if users.len() >= c.max_users {
                users.retain(|_, b| b.in_flight > 0);
            }
        }
        let b = users.entry(user.to_string()).or_insert_with(|| Bucket { tokens: c.burst, at: now, in_flight: 0 });
        b.refill(now, c);
        if b.in_flight >= c.max_in_flight {
            return Err(Refused { retry_after: 1, in_flight: true });
        }
        if b.tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - b.tokens) / c.rate);
            return Err(Refused { retry_after: u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).unwrap_or(u32::MAX).max(1), in_flight: false });
        }
        b.tokens -= 1.0;
        b.in_flight += 1;
        Ok(InFlight { fc: self.clone(), user: user.to_string() })
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.users.lock().expect("lock").len()
    }
}

/// Kubernetes' 429 (apiserver's tooManyRequests).
pub(crate) fn too_many_requests(retry_after: u32) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", "Too many requests, please try again later.");
    e.retry_after = Some(retry_after);
    e
}

/// Middleware, after authentication: limits each user's requests.
pub(crate) async fn limit(State(fc): State<Arc<FlowControl>>, req: Request, next: Next) -> Response {
    let admitted = match req.extensions().get::<User>() {
        Some(u) if !u.in_group(MASTERS) && !u.in_group(super::node_authorizer::NODES_GROUP) => match fc.admit(&u.name, Instant::now()) {
            Ok(slot) => Some(slot),
            Err(r) => {
                crate::metrics::global().rejected(r.in_flight);
                return too_many_requests(r.retry_after).into_response();
            }
        },
        _ => None,
    };
    let resp = next.run(req).await;
    drop(admitted);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fc(max_users: usize) -> Arc<FlowControl> {
        FlowControl::new(FlowControlConfig { max_users, ..FlowControlConfig::default() })
    }

    #[test]
    fn a_user_beyond_the_rate_waits_and_others_are_unaffected() {
        let fc = fc(100);
        let t0 = Instant::now();
        // The burst, all at once (each returns its slot at once).
        for _ in 0..100 {
            drop(fc.admit("jane", t0).expect("within the burst"));
        }
        assert_eq!(fc.admit("jane", t0).expect_err("beyond the burst"), Refused { retry_after: 1, in_flight: false });
        assert!(fc.admit("bob", t0).is_ok(), "another user is unaffected");
        // 10 ms later one more token (100/s) has come.
        drop(fc.admit("jane", t0 + Duration::from_millis(10)).expect("refilled"));
        assert!(fc.admit("jane", t0 + Duration::from_millis(10)).is_err());
        // A steady 100/s is admitted indefinitely.
        for i in 1..=500u64 {
            drop(fc.admit("jane", t0 + Duration::from_millis(10 + 10 * i)).expect("steady rate"));
        }
    }

    #[test]
    fn in_flight_requests_are_capped_until_their_slots_return() {
        let fc = fc(100);
        let t0 = Instant::now();
        let held: Vec<InFlight> = (0..32).map(|_| fc.admit("jane", t0).expect("slot")).collect();
        assert_eq!(fc.admit("jane", t0 + Duration::from_secs(5)).expect_err("33rd in flight"), Refused { retry_after: 1, in_flight: true });
        assert!(fc.admit("bob", t0).is_ok());
        drop(held);
        assert!(fc.admit("jane", t0 + Duration::from_secs(5)).is_ok(), "slots returned");
    }

    #[test]
    fn retry_after_says_when_a_token_comes_in_whole_seconds() {
        let fc = FlowControl::new(FlowControlConfig { rate: 0.25, burst: 1.0, ..FlowControlConfig::default() });
        let t0 = Instant::now();
        drop(fc.admit("jane", t0).expect("first"));
        assert_eq!(fc.admit("jane", t0).expect_err("empty").retry_after, 4);
        assert_eq!(fc.admit("jane", t0 + Duration::from_millis(1500)).expect_err("still empty").retry_after, 3);
        assert!(fc.admit("jane", t0 + Duration::from_secs(4)).is_ok());
    }

    #[test]
    fn the_map_of_users_is_bounded_and_forgets_idle_users_first() {
        let fc = fc(3);
        let t0 = Instant::now();
        let busy = fc.admit("busy", t0).expect("busy");
        for _ in 0..100 {
            drop(fc.admit("drained", t0).expect("drained"));
        }
        drop(fc.admit("idle", t0).expect("idle"));
        // 55 ms on: "idle" has refilled, "drained" has 5.5 tokens.
        let t1 = t0 + Duration::from_millis(55);
        drop(fc.admit("new", t1).expect("new"));
        assert_eq!(fc.remembered(), 3);
        for _ in 0..5 {
            drop(fc.admit("drained", t1).expect("refilled tokens"));
        }
        assert!(fc.admit("drained", t1).is_err(), "a drained user is remembered while an idle one can go");
        // Full of users that are not idle: those with nothing in flight go, "busy" stays.
        drop(fc.admit("newer", t1).expect("newer"));
        assert!(fc.remembered() <= 3);
        drop(busy);
        for i in 0..1000 {
            drop(fc.admit(&format!("u{i}"), t1).expect("many users"));
            assert!(fc.remembered() <= 3);
        }
    }

    #[tokio::test]
    async fn the_middleware_answers_429_with_retry_after_and_spares_masters() {
        use axum::body::Body;
        use tower::ServiceExt as _;
        let fc = FlowControl::new(FlowControlConfig { rate: 1.0, burst: 2.0, ..FlowControlConfig::default() });
        let router = axum::Router::new()
            .route("/x", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(fc, limit));
        let call = |user: User| {
            let router = router.clone();
            async move {
                let mut req = axum::http::Request::builder().uri("/x").body(Body::empty()).expect("request");
                req.extensions_mut().insert(user);
                router.oneshot(req).await.expect("infallible")
            }
        };
        let jane = User { name: "jane".into(), ..User::default() };
        assert_eq!(call(jane.clone()).await.status(), 200);
        assert_eq!(call(jane.clone()).await.status(), 200);
        let r = call(jane.clone()).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), usize::MAX).await.expect("body")).expect("json");
        assert_eq!(body["reason"], "TooManyRequests");
        assert_eq!(body["message"], "Too many requests, please try again later.");
        assert_eq!(body["details"]["retryAfterSeconds"], 1);
        let node = User { name: "system:node:n1".into(), groups: vec!["system:nodes".into()], ..User::default() };
        for _ in 0..10 {
            assert_eq!(call(User::admin()).await.status(), 200, "system:masters is exempt");
            assert_eq!(call(node.clone()).await.status(), 200, "nodes are exempt");
        }
    }
}
