//! Quotas and host memory admission (see `docs/security.md`, "Quotas").
//!
//! Every check runs inside the transaction that makes the change it guards (the VM insert of
//! `vm.create`, the image insert of `image.publish`, the `→ starting` write of `vm.start`).
//! The store is one connection behind a mutex, so measuring use and writing the change are
//! atomic: concurrent requests cannot both slip under a limit.
//!
//! - Limits in force ([`limits_in_force`]): the account's overrides, else the configured
//!   defaults, which apply only to accounts whose effective role is `user`; admins are
//!   unlimited unless an override is set on them.
//! - The decision itself ([`check_quota`], [`check_host_memory`]) is pure: only the limits
//!   that the change adds to are checked, so a lowered limit never blocks unrelated work.

use rusqlite::Connection;
use vm_proto::names::format_size;
use vm_proto::types::{Quota, Role, Usage};

use super::{AuthConfig, Error};
use crate::auth::identity::effective_role;
use crate::store::{self, UserRow, VmRow};

/// The limits in force for `user`: defaults only for an effective `user` role.
pub(super) fn limits_in_force(user: &UserRow, auth: &AuthConfig) -> Quota {
    let role = effective_role(user.role, user.uid, &auth.identity.admin_group);
    let defaults = match role {
        Role::User => auth.quota,
        Role::Admin => Quota::default(),
    };
    user.limits.resolve(&defaults)
}

/// Checks (inside the caller's transaction) that account `owner_id` may add `adding`.
/// An owner without an account (vmd itself) has no quota.
pub(super) fn admit(
    conn: &Connection,
    auth: &AuthConfig,
    owner_id: i64,
    adding: &Usage,
) -> Result<(), Error> {
    let Some(user) = store::user_by_id(conn, owner_id)? else {
        return Ok(());
    };
    let now = store::usage(conn, owner_id)?;
    check_quota(&limits_in_force(&user, auth), &now, adding)
}

/// Checks (inside the `→ starting` transaction) the owner's running quotas and the host's
/// memory for starting `vm`, which has no process yet.
pub(super) fn admit_start(conn: &Connection, auth: &AuthConfig, vm: &VmRow) -> Result<(), Error> {
    let adding = Usage {
        running: 1,
        vcpus: u64::from(vm.cpus),
        memory_mib: vm.memory_mib,
        ..Usage::default()
    };
    admit(conn, auth, vm.owner.id, &adding)?;
    let running = store::running_memory_mib(conn)?;
    check_host_memory(auth.host_memory_limit_mib, running, vm.memory_mib)
}

/// One limit: its name, the limit, use now, what the change adds, and how to show amounts.
type Line = (&'static str, Option<u64>, u64, u64, fn(u64) -> String);

/// Whether adding `adding` to `now` stays within `limits`; the error names the first limit
/// passed, with use now, use after and the limit.
pub(super) fn check_quota(limits: &Quota, now: &Usage, adding: &Usage) -> Result<(), Error> {
    let lines: [Line; 5] = [
        ("vms", limits.max_vms, now.vms, adding.vms, count),
        (
            "running vms",
            limits.max_running,
            now.running,
            adding.running,
            count,
        ),
        ("vcpus", limits.max_vcpus, now.vcpus, adding.vcpus, count),
        (
            "memory",
            limits.max_memory_mib,
            now.memory_mib,
            adding.memory_mib,
            mib,
        ),
        (
            "disk",
            limits.max_disk_bytes,
            now.disk_bytes,
            adding.disk_bytes,
            format_size,
        ),
    ];
    lines.into_iter().try_for_each(check_line)
}

fn check_line((what, limit, now, add, show): Line) -> Result<(), Error> {
    let would = now.saturating_add(add);
    match limit {
        Some(limit) if add > 0 && would > limit => Err(Error::Quota {
            what,
            now: show(now),
            would: show(would),
            limit: show(limit),
        }),
        _ => Ok(()),
    }
}

/// Whether the VMs with a process, using `running_mib` now, can take `adding_mib` more
/// within `host_memory_limit`.
pub(super) fn check_host_memory(
    limit_mib: u64,
    running_mib: u64,
    adding_mib: u64,
) -> Result<(), Error> {
    let would = running_mib.saturating_add(adding_mib);
    if would > limit_mib {
        return Err(Error::HostMemory {
            would: mib(would),
            limit: mib(limit_mib),
        });
    }
    Ok(())
}

fn count(n: u64) -> String {
    n.to_string()
}

fn mib(n: u64) -> String {
    format_size(n.saturating_mul(1 << 20))
}

#[cfg(test)]
mod tests {
    use vm_proto::ErrorCode;

    use super::*;
    use crate::store::{Limit, Limits};

    fn usage(vms: u64, running: u64, memory_mib: u64, disk_bytes: u64) -> Usage {
        Usage {
            vms,
            running,
            vcpus: running,
            memory_mib,
            disk_bytes,
        }
    }

    #[test]
    fn unlimited_admits_anything() {
        let big = usage(1000, 1000, 1 << 30, 1 << 50);
        assert!(check_quota(&Quota::default(), &big, &big).is_ok());
    }

    #[test]
    fn reaching_a_limit_is_fine_passing_it_is_not() {
        let limits = Quota {
            max_running: Some(2),
            ..Quota::default()
        };
        let one = usage(0, 1, 0, 0);
        assert!(check_quota(&limits, &usage(3, 1, 0, 0), &one).is_ok());
        let err = check_quota(&limits, &usage(3, 2, 0, 0), &one).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "quota exceeded: running vms would be 3 with a limit of 2 (now 2)"
        );
        assert_eq!(err.code(), ErrorCode::QuotaExceeded);
    }

    #[test]
    fn only_limits_the_change_adds_to_are_checked() {
        let limits = Quota {
            max_vms: Some(1),
            max_running: Some(0),
            ..Quota::default()
        };
        let now = usage(5, 5, 0, 0);
        let disk_only = usage(0, 0, 0, 10);
        assert!(check_quota(&limits, &now, &disk_only).is_ok());
    }

    #[test]
    fn sizes_are_formatted() {
        let limits = Quota {
            max_memory_mib: Some(1024),
            max_disk_bytes: Some(1 << 30),
            ..Quota::default()
        };
        let err = check_quota(&limits, &usage(0, 0, 0, 0), &usage(0, 0, 2048, 0));
        let text = err.expect_err("refused").to_string();
        assert!(
            text.contains("memory would be 2") && text.contains("GiB"),
            "{text}"
        );
        let err = check_quota(&limits, &usage(0, 0, 0, 1 << 29), &usage(0, 0, 0, 1 << 30));
        let text = err.expect_err("refused").to_string();
        assert!(text.starts_with("quota exceeded: disk would be"), "{text}");
    }

    #[test]
    fn host_memory_admission() {
        assert!(check_host_memory(300, 0, 256).is_ok());
        let err = check_host_memory(300, 256, 256).expect_err("refused");
        assert_eq!(err.code(), ErrorCode::Unavailable);
        assert!(err.to_string().contains("host_memory_limit"), "{err}");
    }

    fn auth(quota: Quota) -> AuthConfig {
        AuthConfig {
            identity: crate::auth::identity::IdentityConfig {
                admin_group: "vmd-admin-test-none".into(),
                auto_register: false,
            },
            session_ttl_secs: 60,
            quota,
            host_memory_limit_mib: 1024,
            console_ticket_secs: 30,
        }
    }

    fn user(role: Role, limits: Limits) -> UserRow {
        UserRow {
            id: 7,
            name: "u".into(),
            role,
            uid: None,
            password: None,
            created_at: 0,
            limits,
        }
    }

    #[test]
    fn defaults_apply_to_users_only_overrides_to_everyone() {
        let defaults = Quota {
            max_vms: Some(1),
            ..Quota::default()
        };
        let auth = auth(defaults);
        assert_eq!(
            limits_in_force(&user(Role::User, Limits::default()), &auth),
            defaults
        );
        let admin = user(Role::Admin, Limits::default());
        assert_eq!(limits_in_force(&admin, &auth), Quota::default());
        let capped = Limits {
            running: Limit::Max(3),
            ..Limits::default()
        };
        let in_force = limits_in_force(&user(Role::Admin, capped), &auth);
        assert_eq!((in_force.max_vms, in_force.max_running), (None, Some(3)));
    }
}
