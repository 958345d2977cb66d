//! Command-line syntax (clap derive): global options and one variant per verb.
//!
//! Global options (`--socket`, `--token`, `--output`, `-q`) are accepted before or after the
//! subcommand. Sizes, durations and limits stay strings here and are parsed by the verbs, so
//! that a bad value exits 6 (invalid argument) like the daemon's own validation, not 2 (usage).
//! The account verbs (`user`, `token`, `login`, …) are in [`account`]; `--os`,
//! `--description` and `image set` in [`image_info`]; cloud-init and label options in
//! [`provision`]; `wait --for` targets and `ssh` in [`ready`]; the `net`, `nic` and `port`
//! verbs and `create --net` in [`network`]; the `template` verbs and `create --image |
//! --template` in [`template`].

mod account;
mod image_info;
mod network;
mod provision;
mod ready;
mod template;

pub use account::{
    ExtendArgs, LoginArgs, TokenCommand, TokenCreateArgs, UserAddArgs, UserCommand, UserPasswdArgs,
    UserRmArgs, UserSetArgs,
};
pub use image_info::{visibility, ImageInfoArgs, ImageSetArgs};
pub use network::{
    NetCommand, NetCreateArgs, NicArgs, NicCommand, PortAddArgs, PortCommand, PortRmArgs, VmNetArgs,
};
pub use provision::{LabelArgs, ProvisionArgs};
pub use ready::{SshArgs, WaitFor};
pub use template::{TemplateCommand, TemplateCreateArgs, VmSourceArgs};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vm_proto::types::{ExpiryAction, Firmware};

/// Help heading of the options every command accepts.
const GLOBAL: &str = "Global options";

/// The exit codes, shown at the end of `vmctl --help` (the table is in `error.rs`).
const EXIT_CODES: &str = "Exit codes: 0 success, 1 other error, 2 usage, 3 not found, \
4 conflict (exists, in use, wrong state, console busy), 5 daemon unreachable, \
6 invalid argument, 7 permission denied or not authenticated, 8 timed out (wait), 9 no space, \
10 quota exceeded";

/// The long help of `events`.
const EVENTS_HELP: &str =
    "Print lab events as JSON lines: one event object per line, oldest first, \
whatever --output says, so that the output can be piped into jq or a script.\n\n\
Without --follow: the stored events after --since, then exit. With --follow: stream events \
until Ctrl-C; stored events after --since first when it is given, else only new ones.";

/// The long help of `console`.
const CONSOLE_HELP: &str = "Attach to a running VM's serial console.\n\n\
On a terminal: raw mode, every key goes to the guest; Ctrl-] detaches. \
Otherwise (scripts): stdin is sent to the console and console output goes to stdout; \
after stdin ends, output is still printed for --linger seconds. \
Either way vmctl exits 0 when the console closes (the VM stopped, or another client took it \
over with --force: vmd then writes `[vmd] console taken over by WHO` first). \
One client at a time: while another is attached, vmctl exits 4 unless --force.";

/// vmctl: manage VMs and base images through the vmd daemon.
#[derive(Debug, Parser)]
#[command(name = "vmctl", version, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    /// Daemon socket [default: $VMD_SOCKET, else /run/vmd/vmd.sock for root, else
    /// $XDG_RUNTIME_DIR/vmd/vmd.sock]
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub socket: Option<PathBuf>,
    /// Bearer token to act as its user (from `vmctl login` or `vmctl token create`);
    /// without one, vmd knows you by your uid on the socket
    #[arg(long, global = true, env = "VMD_TOKEN", hide_env_values = true, value_name = "TOKEN", help_heading = GLOBAL)]
    pub token: Option<String>,
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

/// Arguments of `vnc`.
#[derive(Debug, Args)]
pub struct VncArgs {
    /// VM name
    pub name: String,
    /// Relay the VM's screen (through vmd, authorized) on this local TCP address until
    /// Ctrl-C; point any VNC viewer at it, e.g. `vncviewer 127.0.0.1:5901`
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
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
    /// Manage the ISO library (installer and data CD/DVD images)
    #[command(subcommand)]
    Iso(IsoCommand),
    /// Define a VM (stopped): a fresh overlay on a base image, or a clone of a warm template
    Create(CreateArgs),
    /// List your VMs (admins: --all or --user for others')
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show every detail of a VM
    Show(NameArg),
    /// Delete stopped VMs and their disks, in order; stops at the first failure
    #[command(visible_alias = "remove")]
    Rm(NamesArg),
    /// Reset a stopped VM's disk to its base image
    Wipe(NameArg),
    /// Move a VM's deadline later (only VMs created with --ttl), e.g. `extend web1 2h`
    Extend(ExtendArgs),
    /// Change a VM's cpus, memory or disk size (stopped VMs; disks only grow) or description
    Set(SetArgs),
    /// Start a stopped or crashed VM and print it
    Start(NameArg),
    /// Stop a VM: ACPI power-down, then force after a timeout
    Stop(StopArgs),
    /// Reset a running or paused VM (hardware reset)
    Reboot(NameArg),
    /// Pause a running VM's vCPUs
    Pause(NameArg),
    /// Resume a paused VM
    Resume(NameArg),
    /// Show a running VM's screen: relay VNC on a local TCP port (--listen), or print its socket
    Vnc(VncArgs),
    /// Print a VM's console log (serial output and vmd's notes about the VM)
    Logs(LogsArgs),
    /// Print lab events as JSON lines, one event object per line (always JSON, for pipelines)
    #[command(long_about = EVENTS_HELP)]
    Events(EventsArgs),
    /// Wait until a VM is in a state, or its SSH server, guest agent or a console line is there
    /// (exits 8 on --timeout, 1 if it crashes meanwhile)
    Wait(WaitArgs),
    /// Log in to a VM over its forwarded SSH port (runs the system ssh; its exit status is ours)
    Ssh(SshArgs),
    /// Attach to a running VM's serial console (detach with Ctrl-])
    #[command(long_about = CONSOLE_HELP)]
    Console(ConsoleArgs),
    /// Manage lab networks (bridges that join VMs' NICs)
    #[command(subcommand)]
    Net(NetCommand),
    /// Manage warm templates (booted VMs that clones start from in under a second)
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Add or remove a stopped VM's NICs on lab networks
    #[command(subcommand)]
    Nic(NicCommand),
    /// Manage a VM's port forwards (host port to guest port, TCP or UDP)
    #[command(subcommand)]
    Port(PortCommand),
    /// Manage accounts, roles and quotas (admins; users may show and passwd themselves)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Log in with a password and print a session token (for VMD_TOKEN)
    Login(LoginArgs),
    /// End the session of --token / VMD_TOKEN
    Logout,
    /// Show who vmd thinks you are, your role and your quota use
    Whoami,
}

/// The `image` verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Upload a disk image file (qcow2, raw, vmdk, vdi, vhdx, vpc) as a new base image
    Import(ImportArgs),
    /// Make an unsealed base and an install VM of the same name that boots an ISO
    Create(ImageCreateArgs),
    /// Turn an installed base into a read-only base VMs can use (its install VM is removed)
    Seal(NameArg),
    /// Flatten a stopped VM's disk into a new sealed base (the VM is unchanged)
    Publish(PublishArgs),
    /// List base images
    #[command(visible_alias = "list")]
    Ls,
    /// Show every detail of a base image
    Show(NameArg),
    /// Change an image's OS family, description or visibility
    Set(ImageSetArgs),
    /// Delete base images no VM uses, in order; stops at the first failure
    #[command(visible_alias = "remove")]
    Rm(NamesArg),
}

/// The `iso` verbs.
#[derive(Debug, Subcommand)]
pub enum IsoCommand {
    /// Upload an ISO 9660 or UDF image into the ISO library
    Upload(IsoUploadArgs),
    /// List ISOs
    #[command(visible_alias = "list")]
    Ls,
    /// Show every detail of an ISO
    Show(NameArg),
    /// Delete ISOs no VM has inserted, in order; stops at the first failure
    #[command(visible_alias = "remove")]
    Rm(NamesArg),
    /// Insert an ISO into a VM's CD-ROM drive (live while it runs) and print the VM
    Attach(AttachArgs),
    /// Eject the ISO from a VM's CD-ROM drive (live while it runs) and print the VM
    Detach(DetachArgs),
}

/// Guest firmware, the values of `--firmware`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FirmwareArg {
    /// SeaBIOS (legacy BIOS boot)
    Bios,
    /// OVMF (UEFI boot); needs at least 192M of memory
    Uefi,
}

impl From<FirmwareArg> for Firmware {
    fn from(arg: FirmwareArg) -> Self {
        match arg {
            FirmwareArg::Bios => Firmware::Bios,
            FirmwareArg::Uefi => Firmware::Uefi,
        }
    }
}

/// A single object name.
#[derive(Debug, Args)]
pub struct NameArg {
    /// Name of the object
    pub name: String,
}

/// One or more object names.
#[derive(Debug, Args)]
pub struct NamesArg {
    /// Names of the objects
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

/// Arguments of `ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Every user's VMs (admins)
    #[arg(long, conflicts_with = "user")]
    pub all: bool,
    /// That user's VMs (admins, or your own name)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only VMs with this label: KEY or KEY=VALUE (repeatable: all must match)
    #[arg(long = "label", value_name = "KEY[=VALUE]")]
    pub labels: Vec<String>,
}

/// Arguments of `stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Name of the VM
    pub name: String,
    /// End QEMU at once, without asking the guest to power off
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for the guest to power off before forcing [daemon default: 30]
    #[arg(long, value_name = "SECS", conflicts_with = "force")]
    pub timeout: Option<u64>,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Name of the VM
    pub name: String,
    /// Keep printing new output as it arrives, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
    /// Print at most this much of the end of the log, e.g. 4096 or 1M [daemon default: 64K]
    #[arg(long, value_name = "BYTES")]
    pub tail: Option<String>,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events with a sequence number above N [default: 0 without --follow, only new
    /// events with --follow]
    #[arg(long, value_name = "N")]
    pub since: Option<u64>,
    /// Keep printing events as they happen, until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
}

/// Arguments of `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Name of the VM
    pub name: String,
    /// What to wait for: a state (running, stopped, …), ssh (an SSH server answers on the
    /// VM's forwarded port), agent (the guest agent answers) or log:REGEX (a console line of
    /// the current boot matches)
    #[arg(long = "for", value_name = "WHAT", value_parser = ready::wait_for)]
    pub target: WaitFor,
    /// Give up after this many seconds and exit 8 [default: wait forever]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Arguments of `console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Name of the VM
    pub name: String,
    /// When stdin is not a terminal: seconds to keep printing output after stdin ends
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub linger: u64,
    /// Take the console over from the client attached now (it is told and disconnected)
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The disk image file to upload (read by vmctl, streamed to the daemon)
    pub file: PathBuf,
    /// Name of the new base image
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub info: ImageInfoArgs,
}

/// Arguments of `image create`.
#[derive(Debug, Args)]
pub struct ImageCreateArgs {
    /// Name of the new base image, and of its install VM
    pub name: String,
    /// Size of the blank disk the OS is installed on, e.g. 20G
    #[arg(long, value_name = "SIZE")]
    pub size: String,
    /// ISO the install VM boots first
    #[arg(long, value_name = "ISO")]
    pub iso: String,
    /// Firmware of the base and of the VMs made from it [daemon default: bios]
    #[arg(long, value_enum, value_name = "FIRMWARE")]
    pub firmware: Option<FirmwareArg>,
    /// Number of vCPUs of the install VM [daemon default: 1]
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Memory of the install VM, a whole number of MiB, e.g. 1G [daemon default: 512M]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    #[command(flatten)]
    pub info: ImageInfoArgs,
}

/// Arguments of `image publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The stopped VM whose disk (overlay and base) becomes the new base
    pub vm: String,
    /// Name of the new base image
    #[arg(value_name = "NEWBASE")]
    pub name: String,
    /// Every user may use it (admins) [default: public for admins, private for users]
    #[arg(long, conflicts_with = "private")]
    pub public: bool,
    /// Only you (and admins) may use it; it counts against your disk quota
    #[arg(long)]
    pub private: bool,
    /// Reset the copy's identity offline (machine-id, SSH host keys, cloud-init state, logs)
    /// so that VMs made from it do not share it
    #[arg(long)]
    pub generalize: bool,
    #[command(flatten)]
    pub info: ImageInfoArgs,
}

/// Arguments of `iso upload`.
#[derive(Debug, Args)]
pub struct IsoUploadArgs {
    /// The ISO file to upload (read by vmctl, streamed to the daemon)
    pub file: PathBuf,
    /// Name of the new ISO [default: the file name without its extension, lowercased, other
    /// characters than a-z, 0-9 and '-' replaced by '-']
    #[arg(long)]
    pub name: Option<String>,
}

/// Arguments of `iso attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Name of the VM
    pub vm: String,
    /// Name of the ISO to insert (replaces the one inserted, if any)
    pub iso: String,
}

/// Arguments of `iso detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Name of the VM
    pub vm: String,
}

/// Arguments of `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new VM
    pub name: String,
    #[command(flatten)]
    pub source: VmSourceArgs,
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
    /// Insert this ISO in the CD-ROM drive (boots after the disk) [default: none]
    #[arg(long, value_name = "ISO")]
    pub iso: Option<String>,
    /// Guest firmware [default: the base image's]
    #[arg(long, value_enum, value_name = "FIRMWARE")]
    pub firmware: Option<FirmwareArg>,
    /// Lifetime, e.g. 2h, 90m, 1h30m or seconds; then --on-expiry happens [default: none]
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// What happens when the VM expires (needs --ttl or --session) [daemon default: remove]
    #[arg(long, value_enum, value_name = "ACTION")]
    pub on_expiry: Option<ExpiryArg>,
    /// Tie the VM to your login session (--token from `vmctl login`): it expires with it
    #[arg(long)]
    pub session: bool,
    /// Free text shown by `show`, at most 1024 characters on one line [default: none]
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub provision: ProvisionArgs,
    #[command(flatten)]
    pub net: VmNetArgs,
}

/// Arguments of `set`: at least one option.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct SetArgs {
    /// Name of the VM
    pub name: String,
    /// Number of vCPUs (VM stopped)
    #[arg(long, value_name = "N", group = "change")]
    pub cpus: Option<u32>,
    /// Guest memory, a whole number of MiB, e.g. 512M or 2G (VM stopped)
    #[arg(long, value_name = "SIZE", group = "change")]
    pub memory: Option<String>,
    /// Virtual disk size, e.g. 20G: only larger than now (VM stopped)
    #[arg(long, value_name = "SIZE", group = "change")]
    pub disk: Option<String>,
    /// Free text shown by `show`, at most 1024 characters on one line; "" clears it (any time)
    #[arg(long, value_name = "TEXT", group = "change")]
    pub description: Option<String>,
    /// Add or change a label, KEY=VALUE (repeatable; any time)
    #[arg(long = "label", value_name = "KEY=VALUE", group = "change")]
    pub labels: Vec<String>,
    /// Remove the label KEY (repeatable; any time)
    #[arg(long = "unlabel", value_name = "KEY", group = "change")]
    pub unlabels: Vec<String>,
}

/// What expiry does, the values of `--on-expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpiryArg {
    /// Stop the VM and delete it with its disk
    Remove,
    /// Stop the VM and reset its disk to the base; the VM stays
    Wipe,
    /// Stop the VM; it stays
    Stop,
}

impl From<ExpiryArg> for ExpiryAction {
    fn from(arg: ExpiryArg) -> Self {
        match arg {
            ExpiryArg::Remove => ExpiryAction::Remove,
            ExpiryArg::Wipe => ExpiryAction::Wipe,
            ExpiryArg::Stop => ExpiryAction::Stop,
        }
    }
}

#[cfg(test)]
mod tests;
