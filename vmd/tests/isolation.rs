//! The access matrix of `docs/security.md`, checked row by row as three real local accounts: the
//! owner of the objects (role user), another user, and an admin (group `vmd-admin`, not root).
//! Every row of the table needs a case here and every API method needs a row.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Instant;

use serde_json::{json, Value};

use common::lab::{install, lab, login, names, Lab, Who, PASSWORD};
use common::matrix::{api_methods, rows, upgrade, ws_subscribe, Outcome};
use common::{path_str, vmctl_bin, DEADLINE};

const DOC: &str = include_str!("../../docs/security.md");
const API: &str = include_str!("../../vm-proto/src/api.rs");

#[test]
fn every_row_of_the_access_matrix_holds_for_real_accounts() {
    let rows = rows(DOC);
    for method in api_methods(API) {
        let covered = rows
            .iter()
            .any(|r| r.name.split_whitespace().next() == Some(method.as_str()));
        assert!(
            covered,
            "API method {method} has no row in the access matrix"
        );
    }
    for endpoint in [
        "PUT /v1/uploads",
        "GET /v1/vms/{name}/console",
        "GET /v1/vms/{name}/vnc",
    ] {
        let covered = rows.iter().any(|r| r.name == endpoint);
        assert!(
            covered,
            "endpoint {endpoint} has no row in the access matrix"
        );
    }
    let lab = lab();
    let mut failures = Vec::new();
    for row in &rows {
        // The hidden case first, while the row's objects surely exist.
        for who in [Who::Other, Who::Owner, Who::Admin] {
            let got = cell(&lab, &row.name, who);
            let want = &row.expect[who as usize];
            if &got != want {
                failures.push(format!(
                    "{} as {who:?}: want {want:?}, got {got:?}",
                    row.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix violations:\n{}",
        failures.join("\n")
    );
}

/// Runs `row` as `who`; panics on a row without a case.
fn cell(lab: &Lab, row: &str, who: Who) -> Outcome {
    accounts(lab, row, who)
        .or_else(|| images(lab, row, who))
        .or_else(|| vms(lab, row, who))
        .or_else(|| runtime(lab, row, who))
        .or_else(|| events(lab, row, who))
        .or_else(|| networks(lab, row, who))
        .or_else(|| templates(lab, row, who))
        .unwrap_or_else(|| panic!("matrix row {row:?} has no case in vmd/tests/isolation.rs"))
}

fn accounts(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    let me = lab.user(who).name.as_str();
    let owner = lab.owner();
    Some(match row {
        "system.info" => lab.vmctl(who, &["status"]),
        "auth.whoami" => lab.vmctl(who, &["whoami"]),
        "auth.login (the caller's own password)" => lab.rpc(who, "auth.login", login(me)),
        "auth.logout (the caller's own session)" => {
            let resp = lab.d.rpc_as(lab.user(who), None, "auth.login", login(me));
            let token = resp["result"]["token"].as_str().expect("session token");
            Outcome::of_response(&lab.d.rpc_as(
                lab.user(who),
                Some(token),
                "auth.logout",
                json!([]),
            ))
        }
        "user.add" => lab.vmctl(who, &["user", "add", &lab.fresh("acct")]),
        "user.list (other accounts absent for users)" => {
            let (out, list) = lab.json(who, &["user", "ls"]);
            let names = names(&list, "name");
            let seen = |u: Who| names.contains(&lab.user(u).name);
            let fine = match who {
                Who::Admin => seen(Who::Owner) && seen(Who::Other),
                _ => names == [me.to_string()],
            };
            out.check(fine, &format!("user.list showed {names:?}"))
        }
        "user.get (owner's account)" => lab.vmctl(who, &["user", "show", owner]),
        "user.passwd (owner's account)" => Outcome::of_vmctl(&lab.d.vmctl_as(
            lab.user(who),
            &["user", "passwd", owner, "--password-stdin"],
            Some(&format!("{PASSWORD}\n")),
        )),
        "user.set (owner's account)" => lab.vmctl(who, &["user", "set", owner, "--max-vms", "500"]),
        "user.remove (a spare account)" => {
            let spare = lab.fresh("spare");
            lab.d.ok("user.add", json!([{"name": spare}]));
            lab.vmctl(who, &["user", "rm", &spare])
        }
        "token.create (for oneself)" => lab.vmctl(who, &["token", "create"]),
        "token.create (for the owner's account)" => {
            lab.vmctl(who, &["token", "create", "--user", owner])
        }
        "token.list (others' tokens absent for users)" => {
            let (out, list) = lab.json(who, &["token", "ls"]);
            let users = names(&list, "user");
            let fine = match who {
                Who::Admin => users.iter().any(|u| u == owner),
                Who::Owner => users.iter().all(|u| u == me) && !users.is_empty(),
                Who::Other => users.iter().all(|u| u == me),
            };
            out.check(fine, &format!("token.list showed tokens of {users:?}"))
        }
        "token.revoke (owner's token)" => {
            let made = lab.d.ok("token.create", json!([{"user": owner}]));
            let id = made["info"]["id"].to_string();
            lab.vmctl(who, &["token", "revoke", &id])
        }
        _ => return None,
    })
}

fn networks(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    Some(match row {
        "net.create (a network of one's own)" => {
            lab.vmctl(who, &["net", "create", &lab.fresh("mine")])
        }
        "net.list (others' private networks absent)" => {
            let owners = lab.network_of(Who::Owner);
            let (out, list) = lab.json(who, &["net", "ls"]);
            let shown = names(&list, "name").contains(&owners);
            out.check(
                shown == (who != Who::Other),
                &format!("net.list: {owners} shown: {shown}"),
            )
        }
        "net.get (owner's network)" => {
            lab.vmctl(who, &["net", "show", &lab.network_of(Who::Owner)])
        }
        "net.get (shared network)" => lab.vmctl(who, &["net", "show", &lab.network_of(Who::Admin)]),
        "net.remove (owner's network)" => {
            lab.vmctl(who, &["net", "rm", &lab.network_of(Who::Owner)])
        }
        "net.remove (shared network)" => {
            lab.vmctl(who, &["net", "rm", &lab.network_of(Who::Admin)])
        }
        "vm.nic_add (owner's stopped VM, owner's network)" => {
            let net = lab.network_of(Who::Owner);
            lab.vmctl(who, &["nic", "add", &lab.owner_vm(), "--net", &net])
        }
        "vm.nic_add (owner's stopped VM, shared network)" => {
            let net = lab.network_of(Who::Admin);
            lab.vmctl(who, &["nic", "add", &lab.owner_vm(), "--net", &net])
        }
        "vm.nic_remove" => {
            let net = lab.network_of(Who::Owner);
            let vm = lab.owner_vm_with(&["--net", &net]);
            lab.vmctl(who, &["nic", "rm", &vm, "--net", &net])
        }
        "vm.port_add" => lab.vmctl(
            who,
            &["port", "add", &lab.owner_vm(), &lab.fresh_port(), "22"],
        ),
        "vm.port_add (host port below 1024)" => lab.vmctl(
            who,
            &["port", "add", &lab.owner_vm(), &lab.fresh_low_port(), "22"],
        ),
        "vm.port_list" => lab.vmctl(who, &["port", "ls", "vm1"]),
        "vm.port_remove" => {
            let port = lab.fresh_port();
            let vm = lab.owner_vm_with(&["--ssh-port", &port]);
            lab.vmctl(who, &["port", "rm", &vm, &port])
        }
        _ => return None,
    })
}

fn templates(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    let clone = |template: String| {
        let params = json!([{"name": lab.fresh("clone"), "template": template}]);
        lab.rpc(who, "vm.create", params)
    };
    Some(match row {
        "template.create (from the owner's running VM)" => {
            let params = json!([{"name": lab.fresh("tmpl"), "from": lab.owner_running_vm()}]);
            lab.rpc(who, "template.create", params)
        }
        "template.create (a shared one, from the owner's running VM)" => {
            let name = lab.fresh("tmpl");
            let params = json!([{"name": name, "from": lab.owner_running_vm(), "shared": true}]);
            lab.rpc(who, "template.create", params)
        }
        "template.list (others' private templates absent)" => {
            let owners = lab.template_of(Who::Owner);
            let resp = lab
                .d
                .rpc_as(lab.user(who), None, "template.list", json!([]));
            let shown = names(&resp["result"], "name").contains(&owners);
            Outcome::of_response(&resp).check(
                shown == (who != Who::Other),
                &format!("template.list: {owners} shown: {shown}"),
            )
        }
        "template.get (owner's template)" => {
            lab.rpc(who, "template.get", json!([lab.template_of(Who::Owner)]))
        }
        "template.get (shared template)" => {
            lab.rpc(who, "template.get", json!([lab.template_of(Who::Admin)]))
        }
        "template.remove (owner's template)" => {
            lab.rpc(who, "template.remove", json!([lab.template_of(Who::Owner)]))
        }
        "template.remove (shared template)" => {
            lab.rpc(who, "template.remove", json!([lab.template_of(Who::Admin)]))
        }
        "vm.create (a clone of the owner's template)" => clone(lab.template_of(Who::Owner)),
        "vm.create (a clone of a shared template)" => clone(lab.template_of(Who::Admin)),
        _ => return None,
    })
}

fn images(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    Some(match row {
        "PUT /v1/uploads" => {
            let (status, body) = lab.d.upload_as(lab.user(who), &lab.file("guest.qcow2"));
            Outcome::of_status(status, &body)
        }
        "image.import" => {
            let id = lab.upload(who, "guest.qcow2");
            lab.rpc(
                who,
                "image.import",
                json!([{"name": lab.fresh("imp"), "upload_id": id}]),
            )
        }
        "image.import with another admin's upload id" => {
            let id = lab.d.upload(&lab.file("guest.qcow2"))["upload_id"].clone();
            lab.rpc(
                who,
                "image.import",
                json!([{"name": lab.fresh("imp"), "upload_id": id}]),
            )
        }
        "image.list (others' private images absent)" => {
            let private = lab.owner_image();
            let (out, list) = lab.json(who, &["image", "ls"]);
            let shown = names(&list, "name").contains(&private);
            out.check(
                shown == (who != Who::Other),
                &format!("image.list: {private} shown: {shown}"),
            )
        }
        "image.get (public image)" => lab.vmctl(who, &["image", "show", "guest"]),
        "image.get (owner's private image)" => {
            lab.vmctl(who, &["image", "show", &lab.owner_image()])
        }
        "image.publish (owner's stopped VM, private)" => lab.vmctl(
            who,
            &[
                "image",
                "publish",
                &lab.owner_vm(),
                &lab.fresh("pub"),
                "--private",
            ],
        ),
        "image.publish (owner's stopped VM, public)" => lab.vmctl(
            who,
            &[
                "image",
                "publish",
                &lab.owner_vm(),
                &lab.fresh("pub"),
                "--public",
            ],
        ),
        "image.remove (owner's private image)" => {
            lab.vmctl(who, &["image", "rm", &lab.owner_image()])
        }
        "image.remove (public image)" => {
            let name = lab.fresh("shared");
            lab.d.import(&lab.file("guest.qcow2"), &name);
            lab.vmctl(who, &["image", "rm", &name])
        }
        "image.set (owner's private image)" => {
            let name = lab.owner_image();
            lab.vmctl(who, &["image", "set", &name, "--os", "alpine"])
        }
        "image.set (owner's private image, made public)" => {
            lab.vmctl(who, &["image", "set", &lab.owner_image(), "--public"])
        }
        "image.set (public image)" => lab.vmctl(
            who,
            &["image", "set", "guest", "--description", "shared guest"],
        ),
        "image.create" => lab.vmctl(
            who,
            &[
                "image",
                "create",
                &lab.fresh("inst"),
                "--size",
                "64M",
                "--iso",
                "cd",
            ],
        ),
        "image.seal" => {
            let name = lab.fresh("seal");
            let made = lab.d.ok(
                "image.create",
                json!([{"name": name, "size_bytes": 64 << 20, "iso": "cd"}]),
            );
            let disk = made["path"].as_str().expect("install disk path");
            install(disk);
            lab.vmctl(who, &["image", "seal", &name])
        }
        "iso.import" => {
            let id = lab.upload(who, "guest.iso");
            lab.rpc(
                who,
                "iso.import",
                json!([{"name": lab.fresh("iso"), "upload_id": id}]),
            )
        }
        "iso.list" => lab.vmctl(who, &["iso", "ls"]),
        "iso.get" => lab.vmctl(who, &["iso", "show", "cd"]),
        "iso.remove" => {
            let name = lab.fresh("iso");
            lab.d.import_iso(&name);
            lab.vmctl(who, &["iso", "rm", &name])
        }
        _ => return None,
    })
}

fn vms(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    let create = |image: &str| {
        lab.vmctl(
            who,
            &[
                "create",
                &lab.fresh("new"),
                "--image",
                image,
                "--memory",
                "128M",
            ],
        )
    };
    Some(match row {
        "vm.create (on a public image)" => create("guest"),
        "vm.create (on the owner's private image)" => create(&lab.owner_image()),
        "vm.list (other users' VMs absent)" => {
            let (out, list) = lab.json(who, &["ls"]);
            let shown = names(&list, "name").contains(&"vm1".to_string());
            out.check(
                shown == (who == Who::Owner),
                &format!("vm.list: vm1 shown: {shown}"),
            )
        }
        "vm.list (all users)" => {
            let (out, list) = lab.json(who, &["ls", "--all"]);
            let shown = names(&list, "name").contains(&"vm1".to_string());
            out.check(shown, "vm.list --all lacks vm1")
        }
        "vm.get" => lab.vmctl(who, &["show", "vm1"]),
        "vm.extend" => lab.vmctl(who, &["extend", &lab.owner_vm_with(&["--ttl", "1h"]), "1d"]),
        // The description changes any time, so the running vm1 will do.
        "vm.set" => lab.vmctl(who, &["set", "vm1", "--description", "seen by its owner"]),
        "vm.logs" => lab.vmctl(who, &["logs", "vm1"]),
        "vm.follow_logs" => ws_subscribe(&lab.d, lab.user(who), "vm.follow_logs", json!(["vm1"])),
        "vm.start" => {
            let name = lab.owner_vm();
            let out = lab.vmctl(who, &["start", &name]);
            lab.d
                .call("vm.stop", json!([{"name": name, "force": true}]));
            out
        }
        "vm.stop" => {
            let name = lab.owner_vm();
            lab.d.ok("vm.start", json!([name]));
            let out = lab.vmctl(who, &["stop", "--force", &name]);
            lab.d
                .call("vm.stop", json!([{"name": name, "force": true}]));
            out
        }
        "vm.wipe" => lab.vmctl(who, &["wipe", &lab.owner_vm()]),
        "vm.remove" => lab.vmctl(who, &["rm", &lab.owner_vm()]),
        _ => return None,
    })
}

/// Rows on the running VM `vm1`; each leaves it running.
fn runtime(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    let resume = || {
        lab.d.call("vm.resume", json!(["vm1"]));
    };
    Some(match row {
        "vm.reboot" => lab.vmctl(who, &["reboot", "vm1"]),
        // Pause and resume right after each other are safe since the monitor stopped
        // recording the echoes of vmd's own stop/cont (`runtime.rs`'s back-to-back test);
        // a `wrong_state` answer is still retried, so that this test checks authorization
        // and nothing else.
        "vm.pause" => {
            let out = retry(|| lab.vmctl(who, &["pause", "vm1"]));
            resume();
            out
        }
        "vm.resume" => {
            let out = retry(|| {
                retry(|| Outcome::of_response(&lab.d.call("vm.pause", json!(["vm1"]))));
                lab.vmctl(who, &["resume", "vm1"])
            });
            resume();
            out
        }
        "vm.attach_iso" => {
            let out = lab.vmctl(who, &["iso", "attach", "vm1", "cd"]);
            lab.d.call("vm.detach_iso", json!(["vm1"]));
            out
        }
        "vm.detach_iso" => {
            lab.d
                .ok("vm.attach_iso", json!([{"vm": "vm1", "iso": "cd"}]));
            lab.vmctl(who, &["iso", "detach", "vm1"])
        }
        "vm.console_ticket" => lab.rpc(
            who,
            "vm.console_ticket",
            json!([{"vm": "vm1", "kind": "vnc"}]),
        ),
        "GET /v1/vms/{name}/console" => retry(|| {
            upgrade(
                &lab.d,
                lab.user(who),
                "/v1/vms/vm1/console",
                "vmd-console",
                b"",
            )
        }),
        "GET /v1/vms/{name}/console?force=1" => retry(|| {
            upgrade(
                &lab.d,
                lab.user(who),
                "/v1/vms/vm1/console?force=1",
                "vmd-console",
                b"",
            )
        }),
        "GET /v1/vms/{name}/vnc" => {
            retry(|| upgrade(&lab.d, lab.user(who), "/v1/vms/vm1/vnc", "vmd-vnc", b"RFB"))
        }
        _ => return None,
    })
}

/// `attempt` until it answers allow, not_found or permission_denied (a console or display
/// just closed by the previous cell may still be busy; see also `vm.pause`), within the
/// deadline.
fn retry(attempt: impl Fn() -> Outcome) -> Outcome {
    let end = Instant::now() + DEADLINE;
    loop {
        let out = attempt();
        if !matches!(out, Outcome::Other(_)) || Instant::now() > end {
            return out;
        }
    }
}

fn events(lab: &Lab, row: &str, who: Who) -> Option<Outcome> {
    Some(match row {
        "events.list (other users' events absent)" => {
            let out = lab
                .d
                .vmctl_as(lab.user(who), &["events", "--since", "0"], None);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let list: Vec<Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            judge_events(lab, who, Outcome::of_vmctl(&out), &list)
        }
        "events.subscribe (other users' events absent)" => subscribed(lab, who),
        _ => return None,
    })
}

/// `vmctl events --since 0 --follow` as `who`, read until an event of a VM `who` creates after
/// subscribing (the stream is in order, so everything before it has been sent).
fn subscribed(lab: &Lab, who: Who) -> Outcome {
    let mut child = Command::new("runuser")
        .args(["-u", &lab.user(who).name, "--"])
        .arg(vmctl_bin())
        .args([
            "--socket",
            path_str(&lab.d.socket),
            "events",
            "--since",
            "0",
            "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runuser vmctl events");
    let (tx, lines) = channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let marker = lab.fresh("mark");
    let made = lab.vmctl(
        who,
        &["create", &marker, "--image", "guest", "--memory", "128M"],
    );
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while !got.iter().any(|e: &Value| e["vm"] == marker.as_str()) {
        match lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) => got.extend(serde_json::from_str::<Value>(&line).ok()),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = got.iter().any(|e| e["vm"] == marker.as_str());
    judge_events(
        lab,
        who,
        made.check(seen, "own new VM's event not streamed"),
        &got,
    )
}

/// Allow if `who`'s events hold back exactly what they should: the other user sees their own
/// and nothing of the owner's, the owner and admin see the owner's VM with the owner as its actor.
fn judge_events(lab: &Lab, who: Who, out: Outcome, list: &[Value]) -> Outcome {
    let owner = lab.owner();
    // Events of public objects are everyone's, their owner included (as in `image.list`): an
    // image of the owner's that an admin made public (`image.set`) is one.
    let shared = public_images(lab);
    let public = |e: &Value| {
        e["image"]
            .as_str()
            .is_some_and(|i| shared.iter().any(|s| s == i))
    };
    let about_owner =
        |e: &&Value| !public(e) && (e["vm"] == "vm1" || e["owner"] == owner || e["actor"] == owner);
    let leaked: Vec<&Value> = list.iter().filter(about_owner).collect();
    // A public event (seen by all) must not name the owner's VMs either, e.g. the VM a
    // public base was published from.
    let theirs = owner_vm_names(lab);
    let names_theirs = |e: &&Value| {
        let message = e["message"].as_str().unwrap_or_default();
        message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|word| theirs.iter().any(|vm| vm == word))
    };
    let named: Vec<&Value> = list.iter().filter(names_theirs).collect();
    let me = lab.user(who).name.as_str();
    let own = list.iter().any(|e| e["actor"] == me);
    let fine = match who {
        Who::Other => leaked.is_empty() && named.is_empty() && own,
        _ => list.iter().any(|e| e["vm"] == "vm1" && e["actor"] == owner),
    };
    out.check(fine, &format!("events seen: {list:?}"))
}

/// Names of every VM the owner has had, from the whole event log (as root).
fn owner_vm_names(lab: &Lab) -> Vec<String> {
    let list = lab.d.ok("events.list", json!([0, 1000]));
    let list = list.as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = list
        .iter()
        .filter(|e| e["owner"] == lab.owner())
        .filter_map(|e| e["vm"].as_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Names of the public images now (as root).
fn public_images(lab: &Lab) -> Vec<String> {
    let list = lab.d.ok("image.list", json!([]));
    let list = list.as_array().cloned().unwrap_or_default();
    list.iter()
        .filter(|i| i["public"] == true)
        .filter_map(|i| i["name"].as_str().map(String::from))
        .collect()
}
