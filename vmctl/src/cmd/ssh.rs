//! `vmctl ssh NAME [--user U] [-i KEY] [-- CMD…]`: runs the system `ssh` against the VM's
//! forwarded port on 127.0.0.1, replacing vmctl (so ssh's exit status is vmctl's).
//!
//! Host keys go to vmctl's own known-hosts file (`<cache dir>/vmctl/known_hosts`) under the
//! alias `vmd-<name>-<instance id>`: a wiped or re-provisioned VM has a new instance id, so its
//! new key is a new entry rather than a "host key changed" alarm, and VMs that reuse a port
//! never share an entry. New keys are accepted (`accept-new`), changed ones refused.
//! Without a terminal on stdin, ssh runs in batch mode (no password prompts).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use vm_proto::api::VmdApiClient;
use vm_proto::types::Vm;
use vm_proto::{ApiError, ErrorCode};

use super::Ctx;
use crate::cli::SshArgs;
use crate::error::CliError;

/// Looks the VM up and execs ssh; returns only if ssh cannot be started.
pub async fn run(ctx: &Ctx, args: SshArgs) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    let vm = client.vm_get(args.name.clone()).await?;
    let known_hosts = known_hosts()?;
    let argv = ssh_argv(&vm, &args, &known_hosts, !std::io::stdin().is_terminal())?;
    let err = std::process::Command::new("ssh").args(argv).exec();
    Err(CliError::Io {
        context: "cannot run ssh".into(),
        source: err,
    })
}

/// ssh's arguments for `vm`.
fn ssh_argv(
    vm: &Vm,
    args: &SshArgs,
    known_hosts: &Path,
    batch: bool,
) -> Result<Vec<OsString>, CliError> {
    let port = vm
        .ssh_port
        .ok_or_else(|| super::wait_ready::no_ssh_port(vm))?;
    let user = args
        .user
        .clone()
        .or_else(|| vm.cloud_init.as_ref().map(|c| c.user.clone()))
        .ok_or_else(|| no_user(&vm.name))?;
    let instance = vm
        .cloud_init
        .as_ref()
        .map_or(vm.name.as_str(), |c| c.instance_id.as_str());
    let mut argv: Vec<OsString> = vec!["-p".into(), port.to_string().into()];
    let options = [
        format!("HostKeyAlias=vmd-{}-{}", vm.name, alias_part(instance)),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "StrictHostKeyChecking=accept-new".into(),
        "LogLevel=ERROR".into(),
    ];
    for option in options {
        argv.extend(["-o".into(), option.into()]);
    }
    if batch {
        argv.extend(["-o".into(), "BatchMode=yes".into()]);
    }
    if let Some(key) = &args.identity {
        argv.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
        argv.push(key.clone().into_os_string());
    }
    argv.extend(["-l".into(), user.into(), "--".into(), "127.0.0.1".into()]);
    argv.extend(args.command.iter().map(OsString::from));
    Ok(argv)
}

/// `text` reduced to characters safe in a host alias.
fn alias_part(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect()
}

fn no_user(name: &str) -> CliError {
    let err = ApiError::new(
        ErrorCode::InvalidArgument,
        format!("vm {name} has no cloud-init user to log in as"),
    );
    CliError::Api(err.with_hint("pass --user USER"))
}

/// vmctl's known-hosts file, its directory created (private) if needed.
fn known_hosts() -> Result<PathBuf, CliError> {
    let dirs = directories::ProjectDirs::from("", "", "vmctl").ok_or_else(|| {
        CliError::invalid("no home directory for vmctl's known_hosts file (set HOME)")
    })?;
    let dir = dirs.cache_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CliError::Io {
            context: format!("cannot create {}", dir.display()),
            source,
        })?;
    Ok(dir.join("known_hosts"))
}

#[cfg(test)]
mod tests {
    use vm_proto::types::CloudInitInfo;

    use super::*;

    fn vm(ssh_port: Option<u16>, user: Option<&str>) -> Vm {
        let mut vm = crate::output::vm::tests::sample();
        vm.ssh_port = ssh_port;
        vm.cloud_init = user.map(|u| CloudInitInfo {
            user: u.into(),
            ssh_keys: vec![],
            password: false,
            user_data: None,
            instance_id: "iid-7f/../x".into(),
        });
        vm
    }

    fn args(user: Option<&str>, command: &[&str]) -> SshArgs {
        SshArgs {
            name: "web1".into(),
            user: user.map(Into::into),
            identity: Some("/k/id".into()),
            command: command.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn joined(argv: Vec<OsString>) -> String {
        let parts: Vec<String> = argv
            .into_iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        parts.join(" ")
    }

    #[test]
    fn builds_the_ssh_command_line() {
        let kh = Path::new("/c/known_hosts");
        let argv = ssh_argv(
            &vm(Some(2222), Some("lab")),
            &args(None, &["hostname"]),
            kh,
            true,
        );
        assert_eq!(
            joined(argv.expect("argv")),
            "-p 2222 -o HostKeyAlias=vmd-web1-iid-7f..x -o UserKnownHostsFile=/c/known_hosts \
             -o StrictHostKeyChecking=accept-new -o LogLevel=ERROR -o BatchMode=yes \
             -o IdentitiesOnly=yes -i /k/id -l lab -- 127.0.0.1 hostname"
        );
        let argv = ssh_argv(&vm(Some(2222), None), &args(Some("root"), &[]), kh, false);
        let line = joined(argv.expect("argv"));
        assert!(line.contains("HostKeyAlias=vmd-web1-web1 "), "{line}");
        assert!(line.ends_with("-l root -- 127.0.0.1") && !line.contains("BatchMode"));
    }

    #[test]
    fn needs_a_port_and_a_user() {
        let kh = Path::new("/k");
        let no_port = ssh_argv(&vm(None, Some("lab")), &args(None, &[]), kh, true);
        let err = no_port.expect_err("no port");
        assert_eq!(err.exit_code(), 6);
        assert_eq!(err.hint(), Some("add one: vmctl port add web1 PORT 22"));
        let mut isolated = vm(None, Some("lab"));
        isolated.user_net = false;
        let err = ssh_argv(&isolated, &args(None, &[]), kh, true).expect_err("no user net");
        assert!(
            err.hint().is_some_and(|h| h.contains("--no-user-net")),
            "{err:?}"
        );
        let no_user = ssh_argv(&vm(Some(2222), None), &args(None, &[]), kh, true);
        let err = no_user.expect_err("no user");
        assert_eq!((err.exit_code(), err.hint()), (6, Some("pass --user USER")));
    }
}
