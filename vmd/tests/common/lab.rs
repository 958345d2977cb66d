//! The lab the access matrix runs in (`vmd/tests/isolation.rs`): a daemon whose socket every
//! local user may reach, three real local accounts (owner, other user, admin) and helpers that
//! act as them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

use super::accounts::{LocalUser, OPEN_SOCKET};
use super::guest::{guest_iso, guest_qcow2, BOOT};
use super::matrix::Outcome;
use super::Daemon;

pub const PASSWORD: &str = "matrix-password-1";

/// The three columns of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The user who owns the objects of the row.
    Owner = 0,
    /// A second user.
    Other = 1,
    /// A local account in `vmd-admin`.
    Admin = 2,
}

/// A daemon, the three accounts and the objects every row starts from: the public image
/// `guest`, the ISO `cd`, an API token of the owner's, and the owner's running VM `vm1`.
pub struct Lab {
    /// The daemon (dropped before its network namespace).
    pub d: Daemon,
    /// The network namespace the daemon runs in (its lab networks stay there).
    pub ns: testkit::netns::NetNs,
    users: [LocalUser; 3],
    /// World-readable copies of the test guest's files, for uploads as the accounts.
    files: tempfile::TempDir,
    n: AtomicU32,
}

impl Lab {
    /// The account of column `who`.
    pub fn user(&self, who: Who) -> &LocalUser {
        &self.users[who as usize]
    }

    /// The owner's account name.
    pub fn owner(&self) -> &str {
        &self.users[0].name
    }

    /// A world-readable copy of a test guest file (`guest.qcow2`, `guest.iso`).
    pub fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    /// A name not used before in this lab.
    pub fn fresh(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.n.fetch_add(1, Ordering::Relaxed))
    }

    /// vmctl as `who`: its outcome by exit code.
    pub fn vmctl(&self, who: Who, args: &[&str]) -> Outcome {
        Outcome::of_vmctl(&self.d.vmctl_as(self.user(who), args, None))
    }

    /// vmctl `--output json` as `who`: its outcome (other unless a JSON list) and the list.
    pub fn json(&self, who: Who, args: &[&str]) -> (Outcome, Value) {
        let mut full = vec!["--output", "json"];
        full.extend_from_slice(args);
        let out = self.d.vmctl_as(self.user(who), &full, None);
        let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let outcome = Outcome::of_vmctl(&out).check(value.is_array(), "no JSON list");
        (outcome, value)
    }

    /// A JSON-RPC call as `who`: its outcome.
    pub fn rpc(&self, who: Who, method: &str, params: Value) -> Outcome {
        Outcome::of_response(&self.d.rpc_as(self.user(who), None, method, params))
    }

    /// A new stopped VM of the owner's.
    pub fn owner_vm(&self) -> String {
        self.owner_vm_with(&[])
    }

    /// A new stopped VM of the owner's, with more `vmctl create` options.
    pub fn owner_vm_with(&self, options: &[&str]) -> String {
        let name = self.fresh("vm");
        let mut args = vec!["create", &name, "--image", "guest", "--memory", "128M"];
        args.extend_from_slice(options);
        let out = self.vmctl(Who::Owner, &args);
        assert_eq!(out, Outcome::Allow, "owner creates {name}");
        name
    }

    /// A new running VM of the owner's (started, not waited for: its QEMU is enough for a
    /// template).
    pub fn owner_running_vm(&self) -> String {
        let vm = self.owner_vm();
        assert_eq!(
            self.vmctl(Who::Owner, &["start", &vm]),
            Outcome::Allow,
            "start {vm}"
        );
        vm
    }

    /// A new warm template of `who`'s (shared when an admin's) without clones: taken from a
    /// VM that has just started, which (its first clone) is then removed.
    pub fn template_of(&self, who: Who) -> String {
        let (vm, name) = (self.fresh("tsrc"), self.fresh("tmpl"));
        let create = ["create", &vm, "--image", "guest", "--memory", "128M"];
        for args in [&create[..], &["start", &vm]] {
            assert_eq!(self.vmctl(who, args), Outcome::Allow, "{who:?}: {args:?}");
        }
        let shared = who == Who::Admin;
        let params = serde_json::json!([{"name": name, "from": vm, "shared": shared}]);
        let made = self.rpc(who, "template.create", params);
        assert_eq!(made, Outcome::Allow, "{who:?} creates template {name}");
        assert_eq!(self.vmctl(who, &["rm", &vm]), Outcome::Allow, "rm {vm}");
        name
    }

    /// A new network of `who`'s (shared when an admin's); no DHCP, so no dnsmasq.
    pub fn network_of(&self, who: Who) -> String {
        let name = self.fresh("net");
        let out = self.vmctl(who, &["net", "create", &name]);
        assert_eq!(out, Outcome::Allow, "{who:?} creates network {name}");
        name
    }

    /// A host port no other row uses.
    pub fn fresh_port(&self) -> String {
        (20000 + self.n.fetch_add(1, Ordering::Relaxed)).to_string()
    }

    /// A privileged host port (below 1024) no other row uses.
    pub fn fresh_low_port(&self) -> String {
        (100 + self.n.fetch_add(1, Ordering::Relaxed)).to_string()
    }

    /// A new private image of the owner's, published from a new VM.
    pub fn owner_image(&self) -> String {
        let (vm, name) = (self.owner_vm(), self.fresh("priv"));
        let out = self.vmctl(Who::Owner, &["image", "publish", &vm, &name, "--private"]);
        assert_eq!(out, Outcome::Allow, "owner publishes {name}");
        name
    }

    /// An upload by `who` (an id that does not exist when uploads are refused).
    pub fn upload(&self, who: Who, file: &str) -> String {
        let (status, body) = self.d.upload_as(self.user(who), &self.file(file));
        match status {
            201 => serde_json::from_str::<Value>(&body).expect("upload")["upload_id"]
                .as_str()
                .expect("upload_id")
                .to_string(),
            _ => "no-such-upload".into(),
        }
    }
}

/// Starts the lab (boots `vm1`).
pub fn lab() -> Lab {
    let ns = testkit::netns::NetNs::new();
    let wrapper = ns.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    // Every row makes fresh networks: more than the default per-user limit.
    let config = format!("{OPEN_SOCKET}[network]\nmax_networks_per_user = 1000\n");
    let d = Daemon::start_with(&config, &wrapper);
    let users = [
        LocalUser::create("mxo", &[]),
        LocalUser::create("mxt", &[]),
        LocalUser::create("mxa", &["vmd-admin"]),
    ];
    let files = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        files.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    for (src, name) in [(guest_qcow2(), "guest.qcow2"), (guest_iso(), "guest.iso")] {
        let dst = files.path().join(name);
        std::fs::copy(src, &dst).expect("copy guest");
        std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
    }
    let lab = Lab {
        d,
        ns,
        users,
        files,
        n: AtomicU32::new(0),
    };
    for who in [Who::Owner, Who::Other, Who::Admin] {
        assert_eq!(
            lab.vmctl(who, &["whoami"]),
            Outcome::Allow,
            "{who:?} registers"
        );
        let name = &lab.user(who).name;
        lab.d
            .ok("user.passwd", json!([{"name": name, "password": PASSWORD}]));
    }
    lab.d.import_guest();
    lab.d.import_iso("cd");
    lab.d.ok(
        "token.create",
        json!([{"user": lab.owner(), "name": "owners"}]),
    );
    let out = lab.vmctl(
        Who::Owner,
        &["create", "vm1", "--image", "guest", "--memory", "128M"],
    );
    assert_eq!(out, Outcome::Allow, "owner creates vm1");
    assert_eq!(lab.vmctl(Who::Owner, &["start", "vm1"]), Outcome::Allow);
    lab.d.wait_state("vm1", "running", BOOT);
    lab
}

/// `auth.login` parameters for `user`.
pub fn login(user: &str) -> Value {
    json!([{"user": user, "password": PASSWORD}])
}

/// The `field` of every object of a JSON array.
pub fn names(list: &Value, field: &str) -> Vec<String> {
    let items = list.as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|v| v[field].as_str().map(String::from))
        .collect()
}

/// Stands in for an OS installer: writes data on an install disk, so it is no longer blank.
pub fn install(disk: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0x55 0 64k", disk])
        .output()
        .expect("qemu-io");
    assert!(
        out.status.success(),
        "qemu-io: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
