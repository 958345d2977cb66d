//! Tables for `status`: the daemon overview, the caller's identity and the consistency issues.

use std::time::Duration;

use vm_proto::names::format_size;
use vm_proto::types::{ConsistencyIssue, SystemInfo, WhoAmI};

use super::{kv_table, list_table};

/// The whole `status` output: the overview, then the issues table when there are any.
pub fn details(info: &SystemInfo) -> String {
    render(info, Vec::new())
}

/// [`details`] with `user`, `role` and `via` lines after the versions; a failed
/// `auth.whoami` puts its error in the `user` line.
pub fn with_identity(info: &SystemInfo, me: &Result<WhoAmI, String>) -> String {
    let identity = match me {
        Ok(me) => vec![
            ("user", me.user.clone()),
            ("role", me.role.to_string()),
            ("via", super::user::via(me)),
        ],
        Err(err) => vec![("user", format!("unknown: {err}"))],
    };
    render(info, identity)
}

/// The overview with `identity` after the versions, then the issues.
fn render(info: &SystemInfo, identity: Vec<(&'static str, String)>) -> String {
    let mut rows = overview(info);
    let at = rows
        .iter()
        .position(|(key, _)| *key == "pid")
        .unwrap_or(rows.len());
    rows.splice(at..at, identity);
    let overview = kv_table(&rows);
    if info.issues.is_empty() {
        return overview;
    }
    format!(
        "{overview}\n\nConsistency issues found at start-up:\n{}",
        issues(&info.issues)
    )
}

/// Key/value rows of the daemon overview.
fn overview(info: &SystemInfo) -> Vec<(&'static str, String)> {
    let accelerator = format!("{} ({})", info.accelerator.name, info.accelerator.reason);
    let mut rows = vec![
        ("daemon version", info.daemon_version.clone()),
        ("api version", info.api_version.clone()),
        ("vmctl version", env!("CARGO_PKG_VERSION").to_string()),
        ("pid", info.pid.to_string()),
        (
            "uptime",
            humantime::format_duration(Duration::from_secs(info.uptime_secs)).to_string(),
        ),
        ("socket", info.socket_path.clone()),
        ("state dir", info.state_dir.clone()),
        ("images dir", info.images_dir.clone()),
        ("overlays dir", info.overlays_dir.clone()),
        ("qemu-img", info.qemu_img_version.clone()),
        ("accelerator", accelerator),
        ("images", info.image_count.to_string()),
        ("vms", info.vm_count.to_string()),
        ("images size", format_size(info.disk.images_bytes)),
        ("overlays size", format_size(info.disk.overlays_bytes)),
        ("free space", free_space(&info.disk)),
    ];
    rows.extend(info.host.as_ref().map(host_rows).into_iter().flatten());
    rows
}

/// The host's CPU, load and memory rows.
fn host_rows(host: &vm_proto::types::HostLoad) -> Vec<(&'static str, String)> {
    let used = host
        .memory_total_bytes
        .saturating_sub(host.memory_available_bytes);
    vec![
        (
            "host cpu",
            format!("{} CPUs, {:.0}% busy", host.cpus, host.cpu_busy_percent),
        ),
        (
            "host load",
            format!("{:.2} {:.2} {:.2}", host.load_1, host.load_5, host.load_15),
        ),
        (
            "host memory",
            format!(
                "{} used of {} ({} available)",
                format_size(used),
                format_size(host.memory_total_bytes),
                format_size(host.memory_available_bytes)
            ),
        ),
    ]
}

/// The KIND / NAME / PATH table of consistency issues.
fn issues(issues: &[ConsistencyIssue]) -> String {
    let rows = issues.iter().map(|issue| {
        let kind = serde_json::to_value(issue.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        vec![
            kind.unwrap_or_default(),
            issue.name.clone(),
            issue.path.clone(),
        ]
    });
    list_table(&["KIND", "NAME", "PATH"], rows)
}

/// Free space, flagged when it is below vmd's floor or the reserve is gone.
fn free_space(disk: &vm_proto::types::DiskUsage) -> String {
    let free = format_size(disk.free_bytes);
    match (disk.low, disk.reserve_bytes) {
        (true, _) => format!(
            "{free} (LOW: below the floor of {}; creates and starts are refused)",
            format_size(disk.floor_bytes)
        ),
        _ => free,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_proto::types::{Accelerator, ConsistencyIssueKind, DiskUsage};

    fn sample(issues: Vec<ConsistencyIssue>) -> SystemInfo {
        SystemInfo {
            daemon_version: "0.1.0".into(),
            api_version: "1.0".into(),
            pid: 42,
            uptime_secs: 3725,
            socket_path: "/run/vmd/vmd.sock".into(),
            state_dir: "/var/lib/vmd".into(),
            images_dir: "/var/lib/vmd/images".into(),
            overlays_dir: "/var/lib/vmd/overlays".into(),
            qemu_img_version: "qemu-img version 8.2.2".into(),
            accelerator: Accelerator {
                name: "tcg".into(),
                reason: "/dev/kvm missing".into(),
            },
            image_count: 1,
            vm_count: 2,
            disk: DiskUsage {
                images_bytes: 1 << 30,
                overlays_bytes: 5 << 20,
                free_bytes: 10 << 30,
                floor_bytes: 1 << 30,
                low: false,
                reserve_bytes: 64 << 20,
            },
            issues,
            host: None,
        }
    }

    #[test]
    fn overview_has_every_key() {
        let text = details(&sample(vec![]));
        for cell in [
            "1h 2m 5s",
            "tcg (/dev/kvm missing)",
            "qemu-img version 8.2.2",
            "10 GiB",
            "42",
        ] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
        assert!(!text.contains("Consistency"));
    }

    #[test]
    fn host_rows_show_cpu_load_and_memory() {
        let mut info = sample(vec![]);
        info.host = Some(vm_proto::types::HostLoad {
            cpus: 2,
            cpu_busy_percent: 37.4,
            load_1: 0.5,
            load_5: 1.25,
            load_15: 2.0,
            memory_total_bytes: 24 << 30,
            memory_available_bytes: 20 << 30,
        });
        let text = details(&info);
        for cell in ["2 CPUs, 37% busy", "0.50 1.25 2.00", "4 GiB used of 24 GiB"] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
    }

    #[test]
    fn identity_lines_follow_the_versions() {
        let me = WhoAmI {
            user: "ann".into(),
            role: vm_proto::types::Role::User,
            via: vm_proto::types::AuthMethod::Token,
            peer_uid: None,
            token_id: Some(3),
            expires_at: None,
            quota: Default::default(),
            usage: Default::default(),
        };
        let text = with_identity(&sample(vec![]), &Ok(me));
        for line in [
            "user             ann",
            "role             user",
            "via              token",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert!(
            text.find("vmctl version") < text.find("user") && text.find("user") < text.find("pid")
        );
        let text = with_identity(&sample(vec![]), &Err("token expired".into()));
        assert!(
            text.contains("user             unknown: token expired"),
            "{text}"
        );
        assert!(!details(&sample(vec![])).contains("role"));
    }

    #[test]
    fn issues_get_their_own_table() {
        let issue = ConsistencyIssue {
            kind: ConsistencyIssueKind::MissingOverlay,
            name: "web1".into(),
            path: "/var/lib/vmd/overlays/web1.qcow2".into(),
        };
        let text = details(&sample(vec![issue]));
        assert!(text.contains("KIND"), "{text}");
        assert!(
            text.contains("missing_overlay   web1   /var/lib/vmd/overlays/web1.qcow2"),
            "{text}"
        );
    }
}
