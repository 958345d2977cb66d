//! Tables for VMs: the `ls` list and the `show` details.

use vm_proto::names::format_size;
use vm_proto::types::{ConsoleClient, Vm};

use super::{
    created, created_short, expiry, expiry_short, kv_table, list_table, owner, size_exact, yes_no,
};
use super::{vm_guest, vm_net};

/// Bytes in a MiB, to show `memory_mib` with [`format_size`].
pub(super) const MIB: u64 = 1 << 20;

/// The `ls` table: NAME, STATE, IMAGE, CPUS, MEMORY, DISK (used / virtual), OWNER, CREATED,
/// EXPIRES (time left, `-` for none).
pub fn table(vms: &[Vm]) -> String {
    let headers = [
        "NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "DISK", "OWNER", "CREATED", "EXPIRES",
    ];
    list_table(&headers, vms.iter().map(row))
}

/// One `ls` row.
fn row(vm: &Vm) -> Vec<String> {
    vec![
        vm.name.clone(),
        vm.state.to_string(),
        vm.image.clone(),
        vm.cpus.to_string(),
        format_size(vm.memory_mib.saturating_mul(MIB)),
        format!(
            "{} / {}",
            format_size(vm.disk_usage_bytes),
            format_size(vm.disk_bytes)
        ),
        vm.owner.clone(),
        created_short(&vm.created_at),
        expiry_short(vm.expires_at.as_deref()),
    ]
}

/// The `show` text: every field of the VM, one per line, then its NICs and port forwards
/// tables when it has any.
pub fn details(vm: &Vm) -> String {
    fields(vm) + &vm_net::show_tables(vm)
}

/// Every field of the VM, one per line (a clone's `template` lines after its image).
fn fields(vm: &Vm) -> String {
    let mut rows = vec![
        ("name", vm.name.clone()),
        ("description", or_dash(vm.description.clone())),
        ("state", vm.state.to_string()),
        ("image", vm.image.clone()),
    ];
    rows.extend(template_rows(vm));
    rows.extend([
        ("install", yes_no(vm.install).to_string()),
        ("cpus", vm.cpus.to_string()),
        ("memory", memory(vm.memory_mib)),
        ("firmware", vm.firmware.as_str().to_string()),
        ("disk size", size_exact(vm.disk_bytes)),
        ("disk usage", size_exact(vm.disk_usage_bytes)),
        ("iso", or_dash(vm.iso.clone())),
        ("owner", owner(&vm.owner, vm.owner_uid)),
        ("created", created(&vm.created_at)),
        ("expires", expiry(vm.expires_at.as_deref())),
        (
            "on expiry",
            or_dash(vm.on_expiry.map(|a| a.as_str().to_string())),
        ),
        ("session", yes_no(vm.session).to_string()),
        ("overlay path", vm.overlay_path.clone()),
        (
            "ssh port",
            or_dash(vm.ssh_port.map(|port| format!("127.0.0.1:{port}"))),
        ),
        ("user net", vm_net::user_net(vm)),
        ("accelerator", or_dash(vm.accelerator.clone())),
        ("pid", or_dash(vm.pid.map(|pid| pid.to_string()))),
        ("started", or_dash(vm.started_at.as_deref().map(created))),
        ("vnc socket", or_dash(vm.vnc_socket.clone())),
        ("console", console(vm.console.as_ref())),
        ("labels", vm_guest::labels(&vm.labels)),
        ("cloud-init", vm_guest::cloud_init(vm.cloud_init.as_ref())),
        ("guest", vm_guest::guest(vm)),
        ("addresses", vm_guest::addresses(vm)),
        ("reason", or_dash(vm.reason.clone())),
    ]);
    kv_table(&rows)
}

/// A clone's `template` and `restore pending` lines; none for other VMs.
fn template_rows(vm: &Vm) -> Vec<(&'static str, String)> {
    let Some(template) = &vm.template else {
        return vec![];
    };
    vec![
        ("template", template.clone()),
        ("restore pending", yes_no(vm.restore_pending).to_string()),
    ]
}

/// The serial console's client: `ann since TIME (AGE)`, `attached since …` when the daemon
/// does not say who, `-` when none.
fn console(client: Option<&ConsoleClient>) -> String {
    let Some(client) = client else {
        return "-".to_string();
    };
    let who = client.user.as_deref().unwrap_or("attached");
    format!("{who} since {}", created(&client.since))
}

/// Memory in its largest unit, with the exact MiB when that differs: `1 GiB (1024 MiB)`.
pub(super) fn memory(mib: u64) -> String {
    let text = format_size(mib.saturating_mul(MIB));
    if text == format!("{mib} MiB") {
        text
    } else {
        format!("{text} ({mib} MiB)")
    }
}

/// The value, or `-` when the API left it out.
fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vm_proto::types::{ExpiryAction, VmState};

    /// A VM as the daemon would return it.
    pub(crate) fn sample() -> Vm {
        Vm {
            name: "web1".into(),
            state: VmState::Stopped,
            image: "debian-12".into(),
            cpus: 2,
            memory_mib: 1024,
            disk_bytes: 256 << 20,
            disk_usage_bytes: 196 << 10,
            owner: "ann".into(),
            owner_uid: Some(1000),
            expires_at: None,
            on_expiry: None,
            session: false,
            created_at: "2024-05-01T12:00:00Z".into(),
            overlay_path: "/var/lib/vmd/overlays/web1.qcow2".into(),
            ssh_port: Some(2222),
            accelerator: None,
            pid: None,
            started_at: None,
            vnc_socket: None,
            reason: Some("guest panicked".into()),
            iso: None,
            firmware: vm_proto::types::Firmware::Bios,
            install: false,
            description: Some("front end, ticket 42".into()),
            console: None,
            labels: [("course".to_string(), "net101".to_string())].into(),
            cloud_init: None,
            guest: None,
            user_net: true,
            nics: vec![],
            ports: vec![],
            template: None,
            restore_pending: false,
        }
    }

    #[test]
    fn list_has_every_column() {
        let text = table(&[sample()]);
        let mut lines = text.lines();
        let header: Vec<_> = lines.next().expect("header").split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "STATE", "IMAGE", "CPUS", "MEMORY", "DISK", "OWNER", "CREATED", "EXPIRES"]
        );
        let row = lines.next().expect("row");
        for cell in [
            "web1",
            "stopped",
            "debian-12",
            "1 GiB",
            "196 KiB / 256 MiB",
            "ann",
            "d ago   -",
        ] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn list_shows_owner_and_time_left() {
        let soon = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + std::time::Duration::from_secs(2 * 3600 - 30),
        );
        let ephemeral = Vm {
            name: "tmp-1".into(),
            owner: "bob".into(),
            expires_at: Some(soon.to_string()),
            on_expiry: Some(ExpiryAction::Remove),
            ..sample()
        };
        let gone = Vm {
            name: "tmp-2".into(),
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            ..sample()
        };
        let text = table(&[sample(), ephemeral, gone]);
        let rows: Vec<_> = text.lines().collect();
        assert!(
            rows[2].contains("bob") && rows[2].ends_with("in 1h 59m"),
            "{text}"
        );
        assert!(rows[3].ends_with("expired"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn details_show_every_field() {
        let text = details(&sample());
        for cell in [
            "stopped",
            "1 GiB (1024 MiB)",
            "256 MiB (268435456 bytes)",
            "2024-05-01T12:00:00Z",
        ] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
        assert!(
            text.contains("overlay path   /var/lib/vmd/overlays/web1.qcow2"),
            "{text}"
        );
        for line in [
            "install        no",
            "firmware       bios",
            "iso            -",
            "owner          ann (uid 1000)",
            "expires        -",
            "on expiry      -",
            "session        no",
            "description    front end, ticket 42",
            "console        -",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        let installing = Vm {
            console: Some(ConsoleClient {
                since: "2024-05-01T12:00:00Z".into(),
                user: None,
            }),
            install: true,
            description: None,
            iso: Some("guest".into()),
            firmware: vm_proto::types::Firmware::Uefi,
            ..sample()
        };
        let text = details(&installing);
        for line in [
            "install        yes",
            "console        attached since 2024-05-01T12:00:00Z",
            "firmware       uefi",
            "iso            guest",
            "description    -",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }

    #[test]
    fn details_of_a_clone_name_its_template() {
        assert!(!details(&sample()).contains("template"));
        let clone = Vm {
            template: Some("lab-base".into()),
            restore_pending: true,
            ..sample()
        };
        let text = details(&clone);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[3], "image             debian-12", "{text}");
        assert_eq!(lines[4], "template          lab-base", "{text}");
        assert_eq!(lines[5], "restore pending   yes", "{text}");
        let restored = Vm {
            restore_pending: false,
            ..clone
        };
        assert!(details(&restored).contains("restore pending   no\n"));
    }

    #[test]
    fn details_end_with_nics_and_ports() {
        let text = details(&sample());
        assert!(text.contains("user net       yes\n"), "{text}");
        assert!(!text.contains("\n\n"), "{text}");
        let text = details(&vm_net::tests::networked());
        let blocks: Vec<_> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{text}");
        assert!(
            blocks[0].ends_with("reason         guest panicked"),
            "{text}"
        );
        assert!(blocks[1].starts_with("NETWORK   MAC"), "{text}");
        assert!(
            blocks[1].contains("dmz       02:76:6d:00:02:01   -"),
            "{text}"
        );
        assert!(blocks[2].starts_with("PROTO   HOST"), "{text}");
        assert!(blocks[2].contains("udp     0.0.0.0:5353     53"), "{text}");
        let json = crate::output::to_json(&vm_net::tests::networked()).expect("json");
        assert_eq!(
            serde_json::from_str::<Vm>(&json).expect("parse"),
            vm_net::tests::networked()
        );
    }

    #[test]
    fn json_round_trips_the_api_type() {
        let json = crate::output::to_json(&sample()).expect("json");
        assert_eq!(serde_json::from_str::<Vm>(&json).expect("parse"), sample());
        let list = crate::output::to_json(&[sample()]).expect("json");
        assert_eq!(
            serde_json::from_str::<Vec<Vm>>(&list).expect("parse"),
            vec![sample()]
        );
    }
}
