//! The benchmarks' pod watch: every pod from now on, each event showing a pod Ready=True
//! handed to a callback with the instant its bytes arrived. Included with `#[path]`.

use std::time::Instant;

use futures::StreamExt as _;
use serde_json::Value;

/// Watches all pods from the current resourceVersion (the watch lasts `timeout_seconds`)
/// and calls `on_ready(arrived, "ns/name", pod)` for every event whose pod is Ready=True.
/// ERROR events are printed.
pub(crate) async fn watch_ready_pods(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    timeout_seconds: u64,
    mut on_ready: impl FnMut(Instant, String, &Value) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let list: Value = client.get(format!("{url}/api/v1/pods?limit=1")).bearer_auth(token).send().await.expect("list pods").json().await.expect("list json");
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
    let r = client
        .get(format!("{url}/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds={timeout_seconds}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("watch");
    assert_eq!(r.status(), 200, "pod watch");
    tokio::spawn(async move {
        let mut stream = r.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            let now = Instant::now();
            buf.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
                let line = &buf[start..start + pos];
                start += pos + 1;
                let Ok(ev) = serde_json::from_slice::<Value>(line) else { continue };
                if ev["type"] == "ERROR" {
                    eprintln!("pod watch error: {}", ev["object"]);
                    continue;
                }
                let obj = &ev["object"];
                let ready = obj["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                if ready {
                    let key = format!("{}/{}", obj["metadata"]["namespace"].as_str().unwrap_or(""), obj["metadata"]["name"].as_str().unwrap_or(""));
                    on_ready(now, key, obj);
                }
            }
            buf.drain(..start);
        }
        eprintln!("pod watch ended");
    })
}
