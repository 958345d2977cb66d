//! Command-line syntax of guest provisioning and labels: the cloud-init options of `create`
//! and the `--label` options of `create`, `set` and `ls`.

use std::path::PathBuf;

use clap::Args;

/// cloud-init options of `create`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Provisioning (cloud-init)")]
pub struct ProvisionArgs {
    /// SSH public key file for the guest user, `-` for stdin (repeatable) [default: your
    /// ~/.ssh/*.pub when the VM gets a seed]
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
    /// The guest account cloud-init creates, with sudo [daemon default: your account name]
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Read a password for the guest account from stdin's first line (console login; SSH
    /// stays key-only)
    #[arg(long)]
    pub password_stdin: bool,
    /// Your own user-data file: `#cloud-config` YAML or a `#!` script
    #[arg(long, value_name = "FILE")]
    pub cloud_init: Option<PathBuf>,
    /// Attach no cloud-init seed, even if the image runs cloud-init
    #[arg(long, conflicts_with_all = ["ssh_key", "user", "password_stdin", "cloud_init"])]
    pub no_cloud_init: bool,
}

/// `--label KEY=VALUE` of `create`.
#[derive(Debug, Clone, Default, Args)]
pub struct LabelArgs {
    /// A label, KEY=VALUE (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}
