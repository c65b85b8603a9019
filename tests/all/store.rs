//! Store semantics seen through the API: durability across SIGKILL + restart, watch resume
//! from a resourceVersion and 410 Expired past the bounded history, list paging,
//! optimistic concurrency under contention, and watch bookmarks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla_control::store::StoreConfig;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::Status;
use serde_json::{Value, json};

use crate::harness::Cluster;
use crate::kube_client::{in_process, raw_client};

fn rv_num(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("numeric resourceVersion in {v}"))
}

/// name -> (uid, resourceVersion, data) of every object kubectl lists.
fn snapshot(c: &Cluster, args: &[&str]) -> BTreeMap<String, (String, u64, Value)> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let list: Value = serde_json::from_str(c.kubectl(&full).ok()).expect("kubectl json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            let name = format!("{}/{}", i["kind"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""));
            (name, (m["uid"].as_str().unwrap_or("").to_string(), rv_num(i), i["data"].clone()))
        })
        .collect()
}

#[test]
fn objects_survive_sigkill_and_restart() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "persist"]).ok();
    for i in 0..5 {
        c.kubectl(&["-n", "persist", "create", "configmap", &format!("cm-{i}"), &format!("--from-literal=k=v{i}")]).ok();
    }
    c.kubectl(&["-n", "persist", "create", "secret", "generic", "s1", "--from-literal=p=q"]).ok();
    c.kubectl(&["-n", "persist", "label", "configmap", "cm-1", "touched=yes"]).ok();
    c.kubectl_stdin(&["-n", "persist", "apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-2\ndata:\n  k: changed\n").ok();
    c.kubectl(&["-n", "persist", "delete", "configmap", "cm-4"]).ok();

    let before = snapshot(&c, &["-n", "persist", "configmaps,secrets"]);
    let ns_before = snapshot(&c, &["namespaces"]);
    assert_eq!(before.len(), 6, "cm-0..3, kube-root-ca.crt and s1: {before:?}");
    assert!(before.values().all(|(uid, _, _)| !uid.is_empty()));
    let max_rv = before.values().chain(ns_before.values()).map(|(_, rv, _)| *rv).max().expect("objects");

    let dir = c.stop();
    let c = Cluster::start_in(dir);

    let after = snapshot(&c, &["-n", "persist", "configmaps,secrets"]);
    assert_eq!(after, before, "same objects, uids, resourceVersions and data after restart");
    assert_eq!(snapshot(&c, &["namespaces"]), ns_before);
    assert_eq!(after["ConfigMap/cm-2"].2, json!({"k": "changed"}));
    let cm1: Value = serde_json::from_str(c.kubectl(&["-n", "persist", "get", "configmap", "cm-1", "-o", "json"]).ok()).expect("json");
    assert_eq!(cm1["metadata"]["labels"]["touched"], "yes");
    c.kubectl(&["-n", "persist", "get", "configmap", "cm-4"]).err();

    // The next write continues the revision sequence.
    let out = c.kubectl(&["-n", "persist", "create", "configmap", "after-restart", "-o", "json"]);
    let new_rv = rv_num(&serde_json::from_str(out.ok()).expect("json"));
    assert!(new_rv > max_rv, "new write rv {new_rv} must exceed every earlier rv (max {max_rv})");

    // And a second crash keeps that write too.
    let dir = c.stop();
    let c = Cluster::start_in(dir);
    let again = snapshot(&c, &["-n", "persist", "configmaps"]);
    assert_eq!(again["ConfigMap/after-restart"].1, new_rv);
    assert_eq!(again.len(), 6, "cm-0..3, kube-root-ca.crt and after-restart: {again:?}");
}

fn cm(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": v}})).expect("configmap")
}

fn rv_of(c: &ConfigMap) -> String {
    c.metadata.resource_version.clone().expect("resourceVersion")
}

/// (type, name, rv) of a watch event; bookmarks are reported as ("BOOKMARK", "", rv).
fn describe(ev: WatchEvent<ConfigMap>) -> Result<(&'static str, String, String), Box<Status>> {
    let d = |t, c: ConfigMap| (t, c.metadata.name.clone().unwrap_or_default(), rv_of(&c));
    match ev {
        WatchEvent::Added(c) => Ok(d("ADDED", c)),
        WatchEvent::Modified(c) => Ok(d("MODIFIED", c)),
        WatchEvent::Deleted(c) => Ok(d("DELETED", c)),
        WatchEvent::Bookmark(b) => Ok(("BOOKMARK", String::new(), b.metadata.resource_version)),
        WatchEvent::Error(s) => Err(s),
    }
}

/// Reads `n` non-bookmark events from a raw watch starting after `rv`.
async fn watch_n(api: &Api<ConfigMap>, rv: &str, n: usize, live: impl AsyncFnOnce()) -> Vec<(&'static str, String, String)> {
    let stream = api.watch(&WatchParams::default().timeout(60), rv).await.expect("watch starts");
    let mut stream = stream.boxed();
    live().await;
    let mut got = Vec::new();
    while got.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(15), stream.try_next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {got:?}"))
            .expect("watch ok")
            .unwrap_or_else(|| panic!("watch ended after {got:?}"));
        let ev = describe(ev).unwrap_or_else(|s| panic!("watch error {s:?} after {got:?}"));
        if ev.0 != "BOOKMARK" {
            got.push(ev);
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_inside_history_and_expires_outside() {
    let c = in_process(StoreConfig { watch_history: 20, ..StoreConfig::default() }).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let pp = PostParams::default();
    let mut rvs = Vec::new();
    for i in 0..5 {
        rvs.push(rv_of(&api.create(&pp, &cm(&format!("w-{i}"), "0")).await.expect("create")));
    }

    // From w-1's rv: the three later creates (history replay), then live changes, in order.
    let mut expected: Vec<(&str, String, String)> = (2..5).map(|i| ("ADDED", format!("w-{i}"), rvs[i].clone())).collect();
    let live_rvs = std::sync::Mutex::new(Vec::new());
    let got = watch_n(&api, &rvs[1], 5, async || {
        let mut m = api.get("w-2").await.expect("get");
        m.data = Some([("k".to_string(), "1".to_string())].into_iter().collect());
        let m = api.replace("w-2", &pp, &m).await.expect("replace");
        live_rvs.lock().expect("lock").push(rv_of(&m));
        api.delete("w-3", &Default::default()).await.expect("delete");
    })
    .await;
    let modified_rv = live_rvs.lock().expect("lock")[0].clone();
    expected.push(("MODIFIED", "w-2".into(), modified_rv.clone()));
    assert_eq!(&got[..4], &expected[..]);
    assert_eq!((got[4].0, got[4].1.as_str()), ("DELETED", "w-3"));
    let delete_rv: u64 = got[4].2.parse().expect("rv");
    assert!(delete_rv > modified_rv.parse::<u64>().expect("rv"), "{got:?}");

    // 25 more writes push the first events out of the 20-event history.
    let mut later = Vec::new();
    for i in 0..25 {
        later.push(rv_of(&api.create(&pp, &cm(&format!("x-{i:02}"), "0")).await.expect("create")));
    }
    // A watch from a recent rv still replays exactly the events after it.
    let got = watch_n(&api, &later[14], 10, async || {}).await;
    let want: Vec<_> = (15..25).map(|i| ("ADDED", format!("x-{i:02}"), later[i].clone())).collect();
    assert_eq!(got, want);

    // From the first rv: 410 Expired, as an HTTP error or as an ERROR event.
    let status: Box<Status> = match api.watch(&WatchParams::default().timeout(30), &rvs[0]).await {
        Err(kube::Error::Api(s)) => s,
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(stream) => {
            let mut stream = stream.boxed();
            loop {
                let ev = tokio::time::timeout(Duration::from_secs(15), stream.try_next()).await.expect("ERROR event within 15s");
                match ev {
                    Err(kube::Error::Api(s)) => break s,
                    Ok(Some(WatchEvent::Error(s))) => break s,
                    Ok(Some(WatchEvent::Bookmark(_))) => continue,
                    other => panic!("expected 410 Expired, got {other:?}"),
                }
            }
        }
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"), "{status:?}");
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rv0_and_paging_return_every_object_once() {
    let c = in_process(StoreConfig::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    for i in 0..25 {
        api.create(&PostParams::default(), &cm(&format!("p-{i:02}"), "0")).await.expect("create");
    }
    let all: Vec<String> = (0..25).map(|i| format!("p-{i:02}")).collect();
    // Leaving out kube-root-ca.crt, the CA every namespace holds.
    let names = |items: &[ConfigMap]| items.iter().filter_map(|i| i.metadata.name.clone()).filter(|n| n != "kube-root-ca.crt").collect::<Vec<_>>();

    // resourceVersion=0 (served from cache): everything.
    let l = api.list(&ListParams::default().at("0")).await.expect("list rv=0");
    let mut got = names(&l.items);
    got.sort();
    assert_eq!(got, all);

    // limit/continue through kube-rs.
    let mut got = Vec::new();
    let mut lp = ListParams::default().limit(7);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.expect("page");
        pages += 1;
        assert!(page.items.len() <= 7);
        got.extend(names(&page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = ListParams::default().limit(7).continue_token(&token),
            None => break,
        }
        assert!(pages < 10, "too many pages");
    }
    assert_eq!(pages, 4, "25 objects in pages of 7");
    assert_eq!(got, all, "each object exactly once, in name order");

    // resourceVersion=0 with limit, sent raw (kube-rs drops rv=0 when a limit is set).
    let http = raw_client(&c.handle.ca_pem);
    let mut got = Vec::new();
    let mut cont = String::new();
    for _ in 0..30 {
        let mut url = format!("{}/api/v1/namespaces/default/configmaps?limit=10", c.handle.url());
        if cont.is_empty() {
            url.push_str("&resourceVersion=0");
        } else {
            url.push_str(&format!("&continue={cont}"));
        }
        let r = http.get(&url).bearer_auth(&c.handle.admin_token).send().await.expect("send");
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        got.extend(body["items"].as_array().expect("items").iter().map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string()).filter(|n| n != "kube-root-ca.crt"));
        cont = body["metadata"]["continue"].as_str().unwrap_or("").to_string();
        if cont.is_empty() {
            break;
        }
    }
    got.sort();
    assert_eq!(got, all);
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_on_one_rv_exactly_one_wins() {
    const N: usize = 32;
    let c = in_process(StoreConfig::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &cm("hot", "0")).await.expect("create");

    // Round 1: everyone reads first, then everyone writes what they read.
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (api, barrier) = (api.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut obj = api.get("hot").await.expect("get");
                let read_rv = rv_of(&obj);
                barrier.wait().await;
                obj.data = Some([("k".to_string(), format!("writer-{i}"))].into_iter().collect());
                let res = api.replace("hot", &PostParams::default(), &obj).await;
                (i, read_rv, res)
            })
        })
        .collect();
    let mut read_rvs = std::collections::BTreeSet::new();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        let (i, rv, res) = t.await.expect("task");
        read_rvs.insert(rv);
        match res {
            Ok(o) => winners.push((i, o)),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict" => conflicts += 1,
            Err(e) => panic!("writer {i}: unexpected error {e:?}"),
        }
    }
    assert_eq!(read_rvs.len(), 1, "all readers saw the same rv");
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(conflicts, N - 1);
    let (wi, won) = &winners[0];
    let now = api.get("hot").await.expect("get");
    assert_eq!(now.data, won.data);
    assert_eq!(now.data.as_ref().and_then(|d| d.get("k")).cloned(), Some(format!("writer-{wi}")));
    assert_eq!(rv_of(&now), rv_of(won));

    // Round 2: read-increment-write with retry on conflict: no update is lost.
    api.create(&PostParams::default(), &cm("counter", "0")).await.expect("create counter");
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 10_000, "livelock");
                    let mut obj = api.get("counter").await.expect("get");
                    let n: u64 = obj.data.as_ref().and_then(|d| d.get("k")).and_then(|v| v.parse().ok()).expect("counter value");
                    obj.data = Some([("k".to_string(), (n + 1).to_string())].into_iter().collect());
                    match api.replace("counter", &PostParams::default(), &obj).await {
                        Ok(o) => return rv_of(&o),
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
            })
        })
        .collect();
    let mut success_rvs = std::collections::BTreeSet::new();
    for t in tasks {
        success_rvs.insert(t.await.expect("task"));
    }
    assert_eq!(success_rvs.len(), N, "every successful write got its own rv");
    let fin = api.get("counter").await.expect("get");
    assert_eq!(fin.data.as_ref().and_then(|d| d.get("k")).map(String::as_str), Some(N.to_string().as_str()), "no lost update");
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watch_receives_bookmark() {
    let c = in_process(StoreConfig::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let created = api.create(&PostParams::default(), &cm("b", "0")).await.expect("create");
    let from: u64 = rv_of(&created).parse().expect("rv");
    // kube-rs sends allowWatchBookmarks=true by default.
    let wp = WatchParams::default().timeout(60);
    assert!(wp.bookmarks);
    let mut stream = api.watch(&wp, &from.to_string()).await.expect("watch").boxed();
    let bookmark_rv = tokio::time::timeout(Duration::from_secs(12), async {
        loop {
            match stream.try_next().await.expect("watch ok").expect("watch open") {
                WatchEvent::Bookmark(b) => return b.metadata.resource_version,
                other => panic!("no events expected on an idle watch, got {other:?}"),
            }
        }
    })
    .await
    .expect("a BOOKMARK within 12s");
    let bookmark_rv: u64 = bookmark_rv.parse().expect("numeric bookmark rv");
    assert!(bookmark_rv >= from, "bookmark rv {bookmark_rv} >= watch start {from}");
    c.handle.shutdown().await;
}

/// Starts an in-process control plane on `dir`, retrying while a previous instance on the
/// same dir is still releasing its database.
async fn start_on(dir: &std::path::Path, store: StoreConfig) -> flotilla_control::ControlPlaneHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let config = flotilla_control::ControlPlaneConfig { data_dir: dir.join("data"), listen: "127.0.0.1:0".parse().expect("addr"), store: store.clone(), scheduler: true, network: Default::default(), service_lb: true, audit: Default::default(), flow_control: Default::default() };
        match flotilla_control::start(config).await {
            Ok(h) => return h,
            Err(e) if tokio::time::Instant::now() < deadline && e.to_string().contains("already open") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("restart failed: {e:#}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_log_compaction_keeps_objects() {
    let store = StoreConfig { log_retain: 5, ..StoreConfig::default() };
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start_on(dir.path(), store.clone()).await;
    let api: Api<ConfigMap> = Api::namespaced(crate::kube_client::kube_client(&h.url(), &h.ca_pem, &h.admin_token), "default");
    let mut before = BTreeMap::new();
    // Enough writes that the raft log is compacted several times.
    for i in 0..40 {
        let o = api.create(&PostParams::default(), &cm(&format!("c-{i:02}"), "0")).await.expect("create");
        before.insert(o.metadata.name.clone().expect("name"), (o.metadata.uid.clone().expect("uid"), rv_of(&o)));
    }
    let max_rv: u64 = before.values().map(|(_, rv)| rv.parse::<u64>().expect("rv")).max().expect("rvs");
    h.shutdown().await;

    let h = start_on(dir.path(), store).await;
    let api: Api<ConfigMap> = Api::namespaced(crate::kube_client::kube_client(&h.url(), &h.ca_pem, &h.admin_token), "default");
    let after: BTreeMap<_, _> = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|o| o.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .map(|o| (o.metadata.name.clone().expect("name"), (o.metadata.uid.clone().expect("uid"), rv_of(&o))))
        .collect();
    assert_eq!(after, before);
    let o = api.create(&PostParams::default(), &cm("after", "0")).await.expect("create after restart");
    assert!(rv_of(&o).parse::<u64>().expect("rv") > max_rv);
    h.shutdown().await;
}
