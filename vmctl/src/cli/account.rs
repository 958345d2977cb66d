//! Command-line syntax of the account verbs: `user`, `token`, `login`, and `extend`.
//!
//! Limits (`--max-*`) and durations (`--ttl`, `extend`) stay strings: the verbs parse them
//! ([`crate::values`]) so that a bad value exits 6.

use clap::{Args, Subcommand, ValueEnum};
use vm_proto::types::Role;

/// The `user` verbs.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (admins)
    Add(UserAddArgs),
    /// List accounts with their quota use (users see only themselves)
    #[command(visible_alias = "list")]
    Ls,
    /// Show an account: role, uid, quotas (use / limit), VMs
    Show(UserNameArg),
    /// Remove an account (admins); --force also removes its VMs, images and tokens
    #[command(visible_alias = "remove")]
    Rm(UserRmArgs),
    /// Set or clear an account's password (web login; ends its sessions)
    Passwd(UserPasswdArgs),
    /// Change an account's role, uid link or quotas (admins)
    Set(UserSetArgs),
}

/// The `token` verbs.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print its secret (shown this once)
    Create(TokenCreateArgs),
    /// List your tokens and sessions (admins: everyone's); never the secrets
    #[command(visible_alias = "list")]
    Ls,
    /// Revoke a token or session by id
    Revoke(TokenRevokeArgs),
}

/// An account name.
#[derive(Debug, Args)]
pub struct UserNameArg {
    /// Name of the account
    pub name: String,
}

/// Arguments of `user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// Name of the new account
    pub name: String,
    /// Make it an admin
    #[arg(long)]
    pub admin: bool,
    /// Link a local uid: connections from that uid act as this account
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Read an initial password (web login) from the first line of stdin [default: none]
    #[arg(long)]
    pub password_stdin: bool,
}

/// Arguments of `user rm`.
#[derive(Debug, Args)]
pub struct UserRmArgs {
    /// Name of the account
    pub name: String,
    /// Also remove its VMs (stopping them), private images and tokens
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `user passwd`.
#[derive(Debug, Args)]
pub struct UserPasswdArgs {
    /// Name of the account
    pub name: String,
    /// Read the password from the first line of stdin [default: prompt on a terminal]
    #[arg(long, conflicts_with = "clear")]
    pub password_stdin: bool,
    /// Remove the password (no web login)
    #[arg(long)]
    pub clear: bool,
}

/// Roles, the values of `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything, on every user's objects
    Admin,
    /// Own VMs and private images, public images
    User,
}

impl From<RoleArg> for Role {
    fn from(arg: RoleArg) -> Self {
        match arg {
            RoleArg::Admin => Role::Admin,
            RoleArg::User => Role::User,
        }
    }
}

/// Arguments of `user set`. Each limit is a number (sizes for memory and disk), `default`
/// (the configured default) or `unlimited`.
#[derive(Debug, Args)]
pub struct UserSetArgs {
    /// Name of the account
    pub name: String,
    /// New role
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: Option<RoleArg>,
    /// Link (or re-link) a local uid
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// VMs owned: N, default or unlimited
    #[arg(long, value_name = "N")]
    pub max_vms: Option<String>,
    /// VMs running at once: N, default or unlimited
    #[arg(long, value_name = "N")]
    pub max_running: Option<String>,
    /// vCPUs of running VMs: N, default or unlimited
    #[arg(long, value_name = "N")]
    pub max_vcpus: Option<String>,
    /// Memory of running VMs, whole MiB: e.g. 8G, default or unlimited
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Disk (virtual sizes of VMs and private images): e.g. 100G, default or unlimited
    #[arg(long, value_name = "SIZE")]
    pub max_disk: Option<String>,
}

/// Arguments of `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Whose token (admins) [default: yours]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Lifetime, e.g. 30d, 12h, 90m or seconds [default: no expiry]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// A label, e.g. ci
    #[arg(long, value_name = "LABEL")]
    pub name: Option<String>,
}

/// Arguments of `token revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Id of the token (see `vmctl token ls`)
    pub id: u64,
}

/// Arguments of `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Account name
    pub user: String,
    /// Read the password from the first line of stdin [default: prompt on a terminal]
    #[arg(long)]
    pub password_stdin: bool,
}

/// Arguments of `extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// Name of the VM
    pub name: String,
    /// How much later, e.g. 2h, 90m, 1h30m or seconds
    pub duration: String,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("vmctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("parses").command
    }

    #[test]
    fn user_set_takes_every_limit_as_text() {
        let Command::User(UserCommand::Set(args)) = parse(&[
            "user",
            "set",
            "ann",
            "--role",
            "admin",
            "--uid",
            "1001",
            "--max-vms",
            "5",
            "--max-running",
            "default",
            "--max-vcpus",
            "unlimited",
            "--max-memory",
            "8G",
            "--max-disk",
            "100G",
        ]) else {
            panic!("not user set")
        };
        assert_eq!((args.name.as_str(), args.uid), ("ann", Some(1001)));
        assert_eq!(args.role.map(Role::from), Some(Role::Admin));
        assert_eq!(args.max_vms.as_deref(), Some("5"));
        assert_eq!(args.max_running.as_deref(), Some("default"));
        assert_eq!(args.max_vcpus.as_deref(), Some("unlimited"));
        assert_eq!(args.max_memory.as_deref(), Some("8G"));
        assert_eq!(args.max_disk.as_deref(), Some("100G"));
    }

    #[test]
    fn user_verbs_parse() {
        let Command::User(UserCommand::Add(add)) = parse(&[
            "user",
            "add",
            "bob",
            "--admin",
            "--uid",
            "7",
            "--password-stdin",
        ]) else {
            panic!("not user add")
        };
        assert!(add.admin && add.password_stdin && add.uid == Some(7));
        assert!(matches!(
            parse(&["user", "list"]),
            Command::User(UserCommand::Ls)
        ));
        assert!(matches!(parse(&["user", "show", "a"]),
            Command::User(UserCommand::Show(n)) if n.name == "a"));
        assert!(matches!(parse(&["user", "remove", "a", "--force"]),
            Command::User(UserCommand::Rm(r)) if r.force));
        assert!(matches!(parse(&["user", "passwd", "a", "--clear"]),
            Command::User(UserCommand::Passwd(p)) if p.clear && !p.password_stdin));
    }

    #[test]
    fn token_login_and_extend_parse() {
        let Command::Token(TokenCommand::Create(args)) = parse(&[
            "token", "create", "--user", "ann", "--ttl", "30d", "--name", "ci",
        ]) else {
            panic!("not token create")
        };
        assert_eq!(args.user.as_deref(), Some("ann"));
        assert_eq!(
            (args.ttl.as_deref(), args.name.as_deref()),
            (Some("30d"), Some("ci"))
        );
        assert!(matches!(
            parse(&["token", "ls"]),
            Command::Token(TokenCommand::Ls)
        ));
        assert!(matches!(parse(&["token", "revoke", "12"]),
            Command::Token(TokenCommand::Revoke(r)) if r.id == 12));
        assert!(matches!(parse(&["login", "ann", "--password-stdin"]),
            Command::Login(l) if l.user == "ann" && l.password_stdin));
        assert!(matches!(parse(&["logout"]), Command::Logout));
        assert!(matches!(parse(&["whoami"]), Command::Whoami));
        assert!(matches!(parse(&["extend", "web1", "1h30m"]),
            Command::Extend(e) if e.name == "web1" && e.duration == "1h30m"));
    }

    #[test]
    fn account_usage_errors_exit_2() {
        let bad = [
            &["user", "add"][..],
            &["user", "set", "a", "--role", "root"],
            &["user", "passwd", "a", "--clear", "--password-stdin"],
            &["token", "revoke", "abc"],
            &["login"],
            &["extend", "web1"],
            &["ls", "--all", "--user", "ann"],
            &["image", "publish", "v", "b", "--public", "--private"],
            &["create", "v", "--image", "b", "--on-expiry", "explode"],
        ];
        for args in bad {
            let argv = std::iter::once("vmctl").chain(args.iter().copied());
            let err = Cli::try_parse_from(argv).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
