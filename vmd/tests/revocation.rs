//! A WebSocket keeps the identity of its upgrade request; vmd checks it again on every call,
//! before every event it streams and while a log is followed: a revoked token, a demoted
//! admin or a removed VM stops working on connections that are already open.

mod common;

use std::time::Duration;

use common::Daemon;
use jsonrpsee::core::client::Subscription;
use jsonrpsee::ws_client::{HeaderMap, WsClient, WsClientBuilder};
use serde_json::json;
use vm_proto::api::VmdApiClient;
use vm_proto::types::{Event, LogChunk, VmFilter};
use vm_proto::ApiError;

/// A WebSocket client that sends `Authorization: Bearer token` on its upgrade request.
async fn client_with(d: &Daemon, token: &str) -> WsClient {
    let stream = tokio::net::UnixStream::connect(&d.socket)
        .await
        .expect("connect");
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    WsClientBuilder::default()
        .set_headers(headers)
        .build_with_stream("ws://localhost/", stream)
        .await
        .expect("ws client")
}

/// The API error kind of a failed call.
fn kind(err: jsonrpsee::core::client::Error) -> String {
    match err {
        jsonrpsee::core::client::Error::Call(obj) => {
            let data = obj.data().map(|d| d.get());
            ApiError::from_parts(obj.code(), obj.message(), data)
                .map(|e| e.kind().as_str().to_string())
                .unwrap_or_else(|| format!("code {}", obj.code()))
        }
        other => format!("{other}"),
    }
}

fn token_for(d: &Daemon, user: &str) -> String {
    let made = d.ok("token.create", json!([{"user": user}]));
    made["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_and_demoted_admins_stop_working_on_open_websockets() {
    let d = Daemon::start();
    d.ok("user.add", json!([{"name": "ann", "admin": true}]));
    let token = token_for(&d, "ann");
    let ws = client_with(&d, &token).await;
    let all = Some(VmFilter {
        all: true,
        ..VmFilter::default()
    });
    ws.vm_list(all.clone())
        .await
        .expect("an admin lists everyone's VMs");
    d.ok("user.set", json!([{"name": "ann", "role": "user"}]));
    let err = ws
        .vm_list(all)
        .await
        .expect_err("demoted on the open socket");
    assert_eq!(kind(err), "permission_denied");
    assert_eq!(
        ws.auth_whoami().await.expect("whoami").role.as_str(),
        "user"
    );
    let id = ws
        .auth_whoami()
        .await
        .expect("whoami")
        .token_id
        .expect("token id");
    d.ok("token.revoke", json!([id]));
    let err = ws
        .auth_whoami()
        .await
        .expect_err("revoked on the open socket");
    assert_eq!(kind(err), "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_follower_is_let_go_when_the_vm_is_removed() {
    let d = Daemon::start();
    d.import(&common::raw_disk(d.dir.path(), "b.img", "8M"), "base");
    d.ok("user.add", json!([{"name": "bob"}]));
    let ws = client_with(&d, &token_for(&d, "bob")).await;
    d.call_with(
        &token_for(&d, "bob"),
        "vm.create",
        json!([{"name": "web", "image": "base"}]),
    );
    let mut logs: Subscription<LogChunk> = ws.vm_follow_logs("web".into()).await.expect("follow");
    d.ok("vm.remove", json!(["web"]));
    // Root takes the name at once: bob's follower must end, never reading the new VM's log.
    d.ok("vm.create", json!([{"name": "web", "image": "base"}]));
    let ended = tokio::time::timeout(common::DEADLINE, logs.next())
        .await
        .expect("ends in time");
    assert!(
        matches!(ended, None | Some(Err(_))),
        "the follower got {ended:?} instead of being let go"
    );
    let mut events: Subscription<Event> = ws.events_subscribe(Some(0)).await.expect("events");
    let mut vm_events = Vec::new();
    while vm_events.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(30), events.next()).await;
        let event = next
            .expect("bob's own events")
            .expect("open")
            .expect("valid");
        if event.vm.is_some() {
            vm_events.push(event);
        }
    }
    for e in &vm_events {
        assert_eq!(
            e.owner.as_deref(),
            Some("bob"),
            "only bob's VM events: {e:?}"
        );
    }
}
