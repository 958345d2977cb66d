//! Command-line syntax (clap derive): global options and one variant per verb.
//!
//! Global options (`--socket`, `--output`, `-q`) are accepted before or after the subcommand.
//! Sizes stay strings here and are parsed by the verbs, so that a bad size exits 6 (invalid
//! argument) like the daemon's own validation, not 2 (usage).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Help heading of the options every command accepts.
const GLOBAL: &str = "Global options";

/// vmctl: manage VMs and base images through the vmd daemon.
#[derive(Debug, Parser)]
#[command(name = "vmctl", version, propagate_version = true)]
pub struct Cli {
    /// Daemon socket [default: $VMD_SOCKET, else /run/vmd/vmd.sock for root, else
    /// $XDG_RUNTIME_DIR/vmd/vmd.sock]
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub socket: Option<PathBuf>,
    /// Output format: human tables, or one JSON document on stdout
    #[arg(long, global = true, value_enum, default_value_t = Format::Table, value_name = "FORMAT", help_heading = GLOBAL)]
    pub output: Format,
    /// Print less: names only for lists, no confirmations, no progress
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned tables for people.
    Table,
    /// The API objects as JSON, for scripts.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon, host and storage status
    Status,
    /// Manage base images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Define a VM as a fresh overlay on a base image (it starts stopped)
    Create(CreateArgs),
    /// List VMs
    #[command(visible_alias = "list")]
    Ls,
    /// Show every detail of a VM
    Show(NameArg),
    /// Delete a stopped VM and its disk
    #[command(visible_alias = "remove")]
    Rm(NameArg),
    /// Reset a stopped VM's disk to its base image
    Wipe(NameArg),
}

/// The `image` verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload a disk image file (qcow2, raw, vmdk, vdi, vhdx, vpc) as a new base image
    Import(ImportArgs),
    /// List base images
    #[command(visible_alias = "list")]
    Ls,
    /// Show every detail of a base image
    Show(NameArg),
    /// Delete a base image no VM uses
    #[command(visible_alias = "remove")]
    Rm(NameArg),
}

/// A single object name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Name of the object
    pub name: String,
}

/// Arguments of `image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The disk image file to upload (read by vmctl, streamed to the daemon)
    pub file: PathBuf,
    /// Name of the new base image
    #[arg(long)]
    pub name: String,
}

/// Arguments of `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new VM
    pub name: String,
    /// Base image the VM's disk is an overlay of
    #[arg(long, value_name = "BASE")]
    pub image: String,
    /// Number of vCPUs [daemon default: 1]
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Guest memory, a whole number of MiB, e.g. 512M or 2G [daemon default: 512M]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Virtual disk size, e.g. 20G [default: the base image's size]
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,
    /// Forward this port on 127.0.0.1 to the guest's ssh port 22 [default: no forward]
    #[arg(long, value_name = "PORT")]
    pub ssh_port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("vmctl").chain(args.iter().copied())).expect("parses")
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn globals_work_after_the_subcommand() {
        let cli = parse(&["ls", "--output", "json", "-q", "--socket", "/tmp/s.sock"]);
        assert_eq!(cli.output, Format::Json);
        assert!(cli.quiet);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
        let cli = parse(&["image", "show", "deb", "--output=json"]);
        assert_eq!(cli.output, Format::Json);
        assert!(!parse(&["status"]).quiet);
    }

    #[test]
    fn aliases_parse() {
        assert!(matches!(parse(&["list"]).command, Command::Ls));
        assert!(matches!(parse(&["remove", "a"]).command, Command::Rm(_)));
        assert!(matches!(
            parse(&["image", "list"]).command,
            Command::Image(ImageCommand::Ls)
        ));
        let cli = parse(&["image", "remove", "deb"]);
        assert!(matches!(cli.command, Command::Image(ImageCommand::Rm(n)) if n.name == "deb"));
    }

    #[test]
    fn create_and_import_take_their_options() {
        let cli = parse(&[
            "create",
            "web1",
            "--image",
            "deb",
            "--cpus",
            "2",
            "--memory",
            "1G",
            "--ssh-port",
            "2222",
        ]);
        let Command::Create(args) = cli.command else {
            panic!("not create")
        };
        assert_eq!((args.name.as_str(), args.cpus), ("web1", Some(2)));
        assert_eq!(args.memory.as_deref(), Some("1G"));
        assert_eq!(args.ssh_port, Some(2222));
        let cli = parse(&["image", "import", "/tmp/d.qcow2", "--name", "deb"]);
        let Command::Image(ImageCommand::Import(args)) = cli.command else {
            panic!("not import")
        };
        assert_eq!(args.file, PathBuf::from("/tmp/d.qcow2"));
    }

    #[test]
    fn usage_errors_are_rejected() {
        let bad = [
            &["create", "web1"][..],
            &["image", "import", "f"],
            &["ls", "--output", "xml"],
        ];
        for args in bad {
            let err = Cli::try_parse_from(std::iter::once("vmctl").chain(args.iter().copied()));
            assert_eq!(err.expect_err("usage error").exit_code(), 2, "{args:?}");
        }
    }
}
