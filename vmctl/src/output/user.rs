//! Tables for accounts: the `user ls` list, the `user show` and `whoami` details, and the
//! `user rm` summary.
//!
//! A quota cell reads `use/limit` in lists and `use / limit` in details; an unlimited quota
//! shows `∞` as its limit.

use vm_proto::names::format_size;
use vm_proto::types::{Quota, Usage, User, UserRemoved, WhoAmI};

use super::{created, expiry, kv_table, list_table, names, yes_no};

/// Bytes in a MiB, to show memory quotas with [`format_size`].
const MIB: u64 = 1 << 20;

/// The limit shown for an unlimited quota.
pub const UNLIMITED: &str = "∞";

/// One quota'd resource: its label, what is used and the limit (`None`: unlimited), as text.
struct Resource {
    label: &'static str,
    used: String,
    limit: Option<String>,
}

impl Resource {
    /// `use{sep}limit`, `∞` for no limit.
    fn cell(&self, sep: &str) -> String {
        let limit = self.limit.as_deref().unwrap_or(UNLIMITED);
        format!("{}{sep}{limit}", self.used)
    }
}

/// The five resources of `usage` against `quota`, in column order.
fn resources(usage: &Usage, quota: &Quota) -> [Resource; 5] {
    let count = |n: u64| n.to_string();
    let mib = |n: u64| format_size(n.saturating_mul(MIB));
    let bytes = format_size;
    let row = |label, used: u64, limit: Option<u64>, show: &dyn Fn(u64) -> String| Resource {
        label,
        used: show(used),
        limit: limit.map(show),
    };
    [
        row("vms", usage.vms, quota.max_vms, &count),
        row("running", usage.running, quota.max_running, &count),
        row("vcpus", usage.vcpus, quota.max_vcpus, &count),
        row("memory", usage.memory_mib, quota.max_memory_mib, &mib),
        row("disk", usage.disk_bytes, quota.max_disk_bytes, &bytes),
    ]
}

/// The `user ls` table: NAME, ROLE, UID, then VMS, RUNNING, VCPUS, MEMORY, DISK as use/limit.
pub fn table(users: &[User]) -> String {
    let headers = [
        "NAME", "ROLE", "UID", "VMS", "RUNNING", "VCPUS", "MEMORY", "DISK",
    ];
    list_table(&headers, users.iter().map(row))
}

/// One `user ls` row.
fn row(user: &User) -> Vec<String> {
    let mut cells = vec![user.name.clone(), user.role.to_string(), uid(user.uid)];
    cells.extend(
        resources(&user.usage, &user.quota)
            .iter()
            .map(|r| r.cell("/")),
    );
    cells
}

/// The `user show` table: the account, each quota as use / limit, and its VMs.
pub fn details(user: &User) -> String {
    let mut rows = vec![
        ("name", user.name.clone()),
        ("role", user.role.to_string()),
        ("uid", uid(user.uid)),
        ("has password", yes_no(user.has_password).to_string()),
        ("created", created(&user.created_at)),
    ];
    rows.extend(quota_rows(
        &user.usage,
        &user.quota,
        Some(&user.quota_overrides),
    ));
    rows.push(("vm names", names(&user.vms)));
    kv_table(&rows)
}

/// The `whoami` table: who, how, and the quota use.
pub fn whoami(me: &WhoAmI) -> String {
    let mut rows = vec![
        ("user", me.user.clone()),
        ("role", me.role.to_string()),
        ("via", via(me)),
        ("uid", uid(me.peer_uid)),
    ];
    if let Some(id) = me.token_id {
        rows.push(("token id", id.to_string()));
        rows.push(("token expires", expiry(me.expires_at.as_deref())));
    }
    rows.extend(quota_rows(&me.usage, &me.quota, None));
    kv_table(&rows)
}

/// How the caller was identified: `peer`, `token` or `session`.
pub fn via(me: &WhoAmI) -> String {
    serde_json::to_value(me.via)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// One `use / limit` line per resource; with `overrides`, per-user limits say so.
fn quota_rows(
    usage: &Usage,
    quota: &Quota,
    overrides: Option<&Quota>,
) -> Vec<(&'static str, String)> {
    let overridden = overrides.map(|o| {
        [
            o.max_vms,
            o.max_running,
            o.max_vcpus,
            o.max_memory_mib,
            o.max_disk_bytes,
        ]
        .map(|v| v.is_some())
    });
    resources(usage, quota)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let own = overridden.is_some_and(|o| o[i]);
            let cell = r.cell(" / ");
            (
                r.label,
                if own {
                    format!("{cell} (per-user)")
                } else {
                    cell
                },
            )
        })
        .collect()
}

/// A uid, or `-`.
fn uid(uid: Option<u32>) -> String {
    uid.map_or_else(|| "-".to_string(), |uid| uid.to_string())
}

/// The `user rm` confirmation: `removed user ann (vms: a, b; images: -; tokens: 3)`.
pub fn removed(gone: &UserRemoved) -> String {
    format!(
        "removed user {} (vms: {}; images: {}; tokens: {})",
        gone.name,
        names(&gone.vms),
        names(&gone.images),
        gone.tokens
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_proto::types::{AuthMethod, Role};

    fn sample() -> User {
        User {
            name: "ann".into(),
            role: Role::User,
            uid: Some(1000),
            has_password: true,
            created_at: "2024-05-01T12:00:00Z".into(),
            quota: Quota {
                max_vms: Some(5),
                max_running: Some(2),
                max_vcpus: None,
                max_memory_mib: Some(8192),
                max_disk_bytes: Some(100 << 30),
            },
            quota_overrides: Quota {
                max_vms: Some(5),
                ..Quota::default()
            },
            usage: Usage {
                vms: 2,
                running: 1,
                vcpus: 2,
                memory_mib: 1024,
                disk_bytes: 40 << 30,
            },
            vms: vec!["web1".into(), "web2".into()],
        }
    }

    #[test]
    fn list_shows_use_over_limit() {
        let admin = User {
            name: "root".into(),
            role: Role::Admin,
            uid: None,
            quota: Quota::default(),
            usage: Usage::default(),
            vms: vec![],
            ..sample()
        };
        let text = table(&[sample(), admin]);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split("   ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "ROLE", "UID", "VMS", "RUNNING", "VCPUS", "MEMORY", "DISK"]
        );
        assert_eq!(
            lines[1],
            [
                "ann",
                "user",
                "1000",
                "2/5",
                "1/2",
                "2/∞",
                "1 GiB/8 GiB",
                "40 GiB/100 GiB"
            ]
        );
        assert_eq!(
            lines[2],
            ["root", "admin", "-", "0/∞", "0/∞", "0/∞", "0 B/∞", "0 B/∞"]
        );
    }

    #[test]
    fn details_show_quotas_and_vms() {
        let text = details(&sample());
        for line in [
            "role           user",
            "has password   yes",
            "vms            2 / 5 (per-user)",
            "running        1 / 2",
            "vcpus          2 / ∞",
            "memory         1 GiB / 8 GiB",
            "vm names       web1, web2",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert!(!text.contains("running        1 / 2 (per-user)"), "{text}");
    }

    #[test]
    fn whoami_says_how_and_until_when() {
        let me = WhoAmI {
            user: "ann".into(),
            role: Role::User,
            via: AuthMethod::Session,
            peer_uid: None,
            token_id: Some(7),
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            quota: sample().quota,
            usage: sample().usage,
        };
        let text = whoami(&me);
        for line in [
            "via             session",
            "token id        7",
            "(expired)",
            "disk            40 GiB / 100 GiB",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        let peer = WhoAmI {
            via: AuthMethod::Peer,
            peer_uid: Some(1000),
            token_id: None,
            ..me
        };
        let text = whoami(&peer);
        assert!(
            text.contains("uid       1000") && !text.contains("token"),
            "{text}"
        );
    }

    #[test]
    fn removal_says_what_went() {
        let gone = UserRemoved {
            name: "ann".into(),
            vms: vec!["web1".into()],
            images: vec![],
            tokens: 3,
        };
        assert_eq!(
            removed(&gone),
            "removed user ann (vms: web1; images: -; tokens: 3)"
        );
    }
}
