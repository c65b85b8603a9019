//! What the lifecycle reads from the pod object: the spec it runs (read once, when the
//! worker starts) and the event each later copy from the API's watch means.

use std::time::Duration;

use serde_json::Value;

use super::{Event, Probes};

/// Grace period when the pod names none (terminationGracePeriodSeconds,
/// deletionGracePeriodSeconds).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The parts of a pod the lifecycle decides on.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Its phase was already Succeeded or Failed (an earlier life of this node ran it).
    pub ended: bool,
    /// It had a deletionTimestamp already. Acted on only for a pod that `ended`: a live
    /// pod's deletion is acted on at the next update from the API (as the worker always
    /// did).
    pub deleting: bool,
    /// restartPolicy (Always when unset).
    pub restart_policy: String,
    /// terminationGracePeriodSeconds.
    pub grace: Duration,
    pub active_deadline: Option<Duration>,
    /// How often the projected ServiceAccount tokens of its volumes are fetched again: a
    /// quarter of the shortest one's lifetime, so a failed refresh leaves three more
    /// tries before it expires (None: it has none).
    pub token_refresh: Option<Duration>,
    /// Init containers, then containers, each in spec order.
    pub containers: Vec<ContainerSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub init: bool,
    pub probes: Probes,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

impl Spec {
    pub fn from_pod(pod: &Value) -> Spec {
        let meta = &pod["metadata"];
        let phase = s(&pod["status"]["phase"]);
        let containers = containers_of(pod).map(|(c, init)| ContainerSpec { name: s(&c["name"]), image: s(&c["image"]), init, probes: Probes::from_container(c) }).collect();
        Spec {
            namespace: s(&meta["namespace"]),
            name: s(&meta["name"]),
            uid: s(&meta["uid"]),
            ended: phase == "Succeeded" || phase == "Failed",
            deleting: !meta["deletionTimestamp"].is_null(),
            restart_policy: pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string(),
            grace: pod["spec"]["terminationGracePeriodSeconds"].as_u64().map_or(DEFAULT_GRACE, Duration::from_secs),
            active_deadline: pod["spec"]["activeDeadlineSeconds"].as_u64().map(Duration::from_secs),
            token_refresh: token_lifetime(pod).map(|l| l / 4),
            containers,
        }
    }

    /// Index of the first main container (the init containers come before it).
    pub fn first_main(&self) -> usize {
        self.containers.iter().take_while(|c| c.init).count()
    }
}

/// The shortest lifetime of the projected ServiceAccount tokens in the pod's volumes.
fn token_lifetime(pod: &Value) -> Option<Duration> {
    pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .filter_map(|src| src.get("serviceAccountToken"))
        .map(|t| Duration::from_secs(t["expirationSeconds"].as_u64().unwrap_or(3600)))
        .min()
}

/// The pod's init containers, then its containers, each in spec order, with whether it
/// is an init container: the order container indices follow.
pub fn containers_of(pod: &Value) -> impl Iterator<Item = (&Value, bool)> {
    [("initContainers", true), ("containers", false)]
        .into_iter()
        .flat_map(move |(list, init)| pod["spec"][list].as_array().into_iter().flatten().map(move |c| (c, init)))
}

impl Event {
    /// What a new copy of the pod from the API's watch means; None when the pod is gone
    /// from it.
    pub fn from_update(pod: Option<&Value>) -> Event {
        match pod {
            None => Event::Gone,
            Some(p) if !p["metadata"]["deletionTimestamp"].is_null() => Event::DeleteRequested {
                grace: p["metadata"]["deletionGracePeriodSeconds"].as_u64().map_or(DEFAULT_GRACE, Duration::from_secs),
            },
            Some(p) => Event::PodUpdated { ready: ready_condition(&p["status"]).map(str::to_string) },
        }
    }
}

/// The status of a pod status's Ready condition.
fn ready_condition(status: &Value) -> Option<&str> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?["status"].as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn spec_lists_init_containers_first_with_defaults() {
        let pod = json!({
            "metadata": {"namespace": "ns", "name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "a", "image": "img-a"}], "initContainers": [{"name": "i", "image": "img-i"}]},
            "status": {"phase": "Pending"},
        });
        let spec = Spec::from_pod(&pod);
        let names: Vec<(&str, bool)> = spec.containers.iter().map(|c| (c.name.as_str(), c.init)).collect();
        assert_eq!(names, [("i", true), ("a", false)]);
        assert_eq!(spec.first_main(), 1);
        assert_eq!((spec.restart_policy.as_str(), spec.grace, spec.active_deadline), ("Always", Duration::from_secs(30), None));
        assert!(!spec.ended && !spec.deleting);
        let done = json!({"metadata": {"deletionTimestamp": "x"}, "spec": {"terminationGracePeriodSeconds": 2, "activeDeadlineSeconds": 5}, "status": {"phase": "Failed"}});
        let spec = Spec::from_pod(&done);
        assert!(spec.ended && spec.deleting);
        assert_eq!((spec.grace, spec.active_deadline), (Duration::from_secs(2), Some(Duration::from_secs(5))));
    }

    #[test]
    fn updates_mean_gone_delete_or_update() {
        assert_eq!(Event::from_update(None), Event::Gone);
        let deleting = json!({"metadata": {"deletionTimestamp": "x", "deletionGracePeriodSeconds": 7}});
        assert_eq!(Event::from_update(Some(&deleting)), Event::DeleteRequested { grace: Duration::from_secs(7) });
        let deleting = json!({"metadata": {"deletionTimestamp": "x"}});
        assert_eq!(Event::from_update(Some(&deleting)), Event::DeleteRequested { grace: Duration::from_secs(30) });
        let marked = json!({"metadata": {}, "status": {"conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        assert_eq!(Event::from_update(Some(&marked)), Event::PodUpdated { ready: Some("False".into()) });
        assert_eq!(Event::from_update(Some(&json!({"metadata": {}}))), Event::PodUpdated { ready: None });
    }
}
