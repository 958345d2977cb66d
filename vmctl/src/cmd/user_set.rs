//! `vmctl user set NAME [--role R] [--uid UID] [--max-* LIMIT]…`: changes an account's role,
//! uid link or quotas (`user.set`). Each limit is a number (a size for memory and disk),
//! `default` or `unlimited`; a bad one exits 6.

use vm_proto::api::VmdApiClient;
use vm_proto::types::{LimitUpdate, Role, UserSet};

use super::Ctx;
use crate::cli::UserSetArgs;
use crate::error::CliError;
use crate::output;
use crate::values::{parse_limit, LimitUnit};

/// Changes the account and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: UserSetArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let user = ctx.connect().await?.user_set(request).await?;
    ctx.out.result(&user, output::user::details)
}

/// Parses the limits and builds the `user.set` parameters.
fn request(args: UserSetArgs) -> Result<UserSet, CliError> {
    let limit = |flag: &str, unit, text: Option<String>| -> Result<Option<LimitUpdate>, CliError> {
        text.map(|t| parse_limit(flag, unit, &t)).transpose()
    };
    Ok(UserSet {
        role: args.role.map(Role::from),
        uid: args.uid,
        max_vms: limit("--max-vms", LimitUnit::Count, args.max_vms)?,
        max_running: limit("--max-running", LimitUnit::Count, args.max_running)?,
        max_vcpus: limit("--max-vcpus", LimitUnit::Count, args.max_vcpus)?,
        max_memory_mib: limit("--max-memory", LimitUnit::MemoryMib, args.max_memory)?,
        max_disk_bytes: limit("--max-disk", LimitUnit::DiskBytes, args.max_disk)?,
        name: args.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_proto::types::LimitWord;

    fn args() -> UserSetArgs {
        UserSetArgs {
            name: "ann".into(),
            role: None,
            uid: None,
            max_vms: None,
            max_running: None,
            max_vcpus: None,
            max_memory: None,
            max_disk: None,
        }
    }

    #[test]
    fn limits_become_units_and_words() {
        let set = request(UserSetArgs {
            max_vms: Some("5".into()),
            max_running: Some("default".into()),
            max_memory: Some("8G".into()),
            max_disk: Some("unlimited".into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(set.max_vms, Some(LimitUpdate::Value(5)));
        assert_eq!(set.max_running, Some(LimitUpdate::Word(LimitWord::Default)));
        assert_eq!(set.max_memory_mib, Some(LimitUpdate::Value(8192)));
        assert_eq!(
            set.max_disk_bytes,
            Some(LimitUpdate::Word(LimitWord::Unlimited))
        );
        assert_eq!((set.max_vcpus, set.role), (None, None));
        let json = serde_json::to_string(&set).expect("json");
        assert_eq!(
            json,
            r#"{"name":"ann","max_vms":5,"max_running":"default","max_memory_mib":8192,"max_disk_bytes":"unlimited"}"#
        );
    }

    #[test]
    fn bad_limits_exit_6_and_name_their_flag() {
        let err = request(UserSetArgs {
            max_vcpus: Some("many".into()),
            ..args()
        })
        .expect_err("bad");
        assert_eq!(err.exit_code(), 6);
        assert!(err.to_string().contains("--max-vcpus"), "{err}");
        let err = request(UserSetArgs {
            max_memory: Some("100K".into()),
            ..args()
        })
        .expect_err("partial MiB");
        assert_eq!(err.exit_code(), 6);
    }
}
