//! Readiness options: what `wait --for` accepts besides a state, and `ssh`.

use std::path::PathBuf;

use clap::Args;
use vm_proto::types::VmState;

/// What `wait --for` waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    /// A VM state (`running`, `stopped`, …).
    State(VmState),
    /// An SSH server answering on the VM's forwarded port.
    Ssh,
    /// The guest agent answering.
    Agent,
    /// A console line of the current boot matching this regular expression (compiled by the
    /// verb, so that a bad one exits 6 like other bad values).
    Log(String),
}

/// Parses `--for`: a state name, `ssh`, `agent` or `log:REGEX`.
pub fn wait_for(value: &str) -> Result<WaitFor, String> {
    match value {
        "ssh" => Ok(WaitFor::Ssh),
        "agent" => Ok(WaitFor::Agent),
        _ => match value.strip_prefix("log:") {
            Some("") => Err("log: needs a regular expression, e.g. log:login:".into()),
            Some(regex) => Ok(WaitFor::Log(regex.to_string())),
            None => VmState::parse(value).map(WaitFor::State).ok_or_else(|| {
                let states: Vec<&str> = VmState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "expected ssh, agent, log:REGEX or a state ({})",
                    states.join(", ")
                )
            }),
        },
    }
}

/// Arguments of `ssh`.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// Name of the VM
    pub name: String,
    /// Log in as this user [default: the VM's cloud-init user]
    #[arg(short = 'l', long)]
    pub user: Option<String>,
    /// Private key file, passed to ssh as -i
    #[arg(short = 'i', value_name = "KEY")]
    pub identity: Option<PathBuf>,
    /// Command to run in the guest (after --) instead of a login shell
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}
