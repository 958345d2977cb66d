//! Ten VMs started in parallel: every start succeeds, every guest prints its own name on its own
//! console, and the event stream (a WebSocket subscription) delivers every state change in
//! order with increasing sequence numbers; `since` resumes without gaps or repeats.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::guest::BOOT;
use common::Daemon;
use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::json;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, EventKind, VmState};

const N: usize = 10;

async fn client(d: &Daemon) -> jsonrpsee::ws_client::WsClient {
    let stream = tokio::net::UnixStream::connect(&d.socket)
        .await
        .expect("connect");
    WsClientBuilder::default()
        .build_with_stream("ws://localhost/", stream)
        .await
        .expect("ws client")
}

async fn next(sub: &mut Subscription<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(120), sub.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_parallel_starts_distinct_consoles_ordered_events() {
    let d = std::sync::Arc::new(Daemon::start());
    d.import_guest();
    let names: Vec<String> = (0..N).map(|i| format!("p{i}")).collect();
    for n in &names {
        d.ok(
            "vm.create",
            json!([{"name": n, "image": "guest", "memory_mib": 128}]),
        );
    }
    let ws = client(&d).await;
    let first_seq = ws
        .events_list(None, Some(10_000))
        .await
        .expect("list")
        .last()
        .map(|e| e.seq)
        .unwrap_or(0);
    let mut sub = ws
        .events_subscribe(Some(first_seq))
        .await
        .expect("subscribe");
    let starts: Vec<_> = names
        .iter()
        .map(|n| {
            let d = d.clone();
            let n = n.clone();
            tokio::task::spawn_blocking(move || d.call("vm.start", json!([n])))
        })
        .collect();
    for s in starts {
        let resp = s.await.expect("join");
        assert_eq!(resp["result"]["state"], "running", "{resp}");
    }
    let mut last = first_seq;
    let mut states: HashMap<String, Vec<VmState>> = HashMap::new();
    while states
        .values()
        .filter(|v| v.last() == Some(&VmState::Running))
        .count()
        < N
    {
        let e = next(&mut sub).await;
        assert!(
            e.seq > last,
            "sequence must increase: {} after {last}",
            e.seq
        );
        last = e.seq;
        if e.kind == EventKind::StateChanged {
            states
                .entry(e.vm.clone().unwrap_or_default())
                .or_default()
                .push(e.state.expect("state"));
        }
    }
    for n in &names {
        assert_eq!(states[n], vec![VmState::Starting, VmState::Running], "{n}");
    }
    let pids: std::collections::HashSet<u64> = names
        .iter()
        .map(|n| d.ok("vm.get", json!([n]))["pid"].as_u64().expect("pid"))
        .collect();
    assert_eq!(pids.len(), N);
    let consoles: std::collections::HashSet<String> = names
        .iter()
        .map(|n| d.ok("vm.get", json!([n]))["vnc_socket"].to_string())
        .collect();
    assert_eq!(consoles.len(), N, "distinct VNC endpoints");
    for n in &names {
        let log = d.wait_log(n, &format!("GUEST-READY {n}"), 1, BOOT);
        let others = names
            .iter()
            .filter(|o| *o != n && log.contains(&format!("GUEST-READY {o}\r")))
            .count();
        assert_eq!(others, 0, "{n}'s console shows another guest: {log}");
    }
    let mid = last;
    for n in &names {
        d.ok("vm.stop", json!([{"name": n, "force": true}]));
    }
    drop(sub);
    let mut resumed = ws.events_subscribe(Some(mid)).await.expect("resubscribe");
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|e: &&Event| e.state == Some(VmState::Stopped))
        .count()
        < N
    {
        let e = next(&mut resumed).await;
        assert!(
            e.seq > mid && seen.last().is_none_or(|p: &Event| e.seq > p.seq),
            "resume order: {e:?}"
        );
        seen.push(e);
    }
    let stored: Vec<u64> = ws
        .events_list(Some(mid), Some(10_000))
        .await
        .expect("list")
        .iter()
        .map(|e| e.seq)
        .collect();
    let streamed: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(
        streamed,
        stored[..streamed.len()],
        "since replays exactly what was stored"
    );
}
