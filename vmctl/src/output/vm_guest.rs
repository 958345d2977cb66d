//! The provisioning lines of `show`: labels, the cloud-init seed and what the guest agent
//! reports.

use vm_proto::types::{CloudInitInfo, GuestInfo, Labels, Vm};

use super::created_short;

/// `course=net101, team=red`, `-` for none.
pub fn labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(", ")
}

/// `user lab, 1 SSH key, password, user-data cloud-config, instance iid-…`, `none` without a
/// seed.
pub fn cloud_init(info: Option<&CloudInitInfo>) -> String {
    let Some(info) = info else {
        return "none".into();
    };
    let mut parts = vec![format!("user {}", info.user)];
    match info.ssh_keys.len() {
        0 => {}
        1 => parts.push("1 SSH key".into()),
        n => parts.push(format!("{n} SSH keys")),
    }
    if info.password {
        parts.push("password".into());
    }
    if let Some(kind) = &info.user_data {
        parts.push(format!("user-data {kind}"));
    }
    parts.push(format!("instance {}", info.instance_id));
    parts.join(", ")
}

/// `Debian GNU/Linux 12 (kernel 6.1.0-28), agent answered 12s ago`; `agent not answering`
/// while the VM runs without an agent answer; `-` without a process.
pub fn guest(vm: &Vm) -> String {
    match &vm.guest {
        None => "-".into(),
        Some(GuestInfo { agent: false, .. }) => "agent not answering".into(),
        Some(info) => {
            let os = info.os.as_deref().unwrap_or("unknown OS");
            let kernel = info
                .kernel
                .as_deref()
                .map(|k| format!(" (kernel {k})"))
                .unwrap_or_default();
            let when = info
                .updated_at
                .as_deref()
                .map(|t| format!(", agent answered {}", created_short(t)))
                .unwrap_or_default();
            format!("{os}{kernel}{when}")
        }
    }
}

/// `enp0s2 10.0.2.15/24, enp0s2 fec0::…/64`, `-` when the agent reported none.
pub fn addresses(vm: &Vm) -> String {
    let Some(info) = vm.guest.as_ref().filter(|g| !g.addresses.is_empty()) else {
        return "-".into();
    };
    let all: Vec<String> = info
        .addresses
        .iter()
        .map(|a| format!("{} {}/{}", a.interface, a.address, a.prefix))
        .collect();
    all.join(", ")
}

#[cfg(test)]
mod tests {
    use vm_proto::types::GuestAddress;

    use super::*;
    use crate::output::vm::{details, tests::sample};

    #[test]
    fn show_has_labels_seed_and_guest() {
        let mut vm = sample();
        vm.labels.insert("team".into(), "red".into());
        vm.cloud_init = Some(CloudInitInfo {
            user: "lab".into(),
            ssh_keys: vec!["ssh-ed25519 AAAA x".into()],
            password: true,
            user_data: Some("cloud-config".into()),
            instance_id: "iid-1".into(),
        });
        vm.guest = Some(GuestInfo {
            agent: true,
            os: Some("Debian GNU/Linux 12 (bookworm)".into()),
            kernel: Some("6.1.0-28-cloud-amd64".into()),
            hostname: Some("web1".into()),
            addresses: vec![GuestAddress {
                interface: "enp0s2".into(),
                address: "10.0.2.15".into(),
                prefix: 24,
                mac: None,
            }],
            updated_at: Some("2020-01-01T00:00:00Z".into()),
        });
        let text = details(&vm);
        for line in [
            "labels         course=net101, team=red",
            "cloud-init     user lab, 1 SSH key, password, user-data cloud-config, instance iid-1",
            "guest          Debian GNU/Linux 12 (bookworm) (kernel 6.1.0-28-cloud-amd64), agent answered ",
            "addresses      enp0s2 10.0.2.15/24",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }

    #[test]
    fn show_says_what_is_missing() {
        let mut vm = sample();
        let text = details(&vm);
        for line in [
            "cloud-init     none",
            "guest          -",
            "addresses      -",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        vm.labels.clear();
        vm.guest = Some(GuestInfo {
            agent: false,
            os: None,
            kernel: None,
            hostname: None,
            addresses: vec![],
            updated_at: None,
        });
        let text = details(&vm);
        for line in ["labels         -", "guest          agent not answering"] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
