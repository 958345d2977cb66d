//! Typed QEMU options → argv.
//!
//! One [`QemuConfig`] describes a VM; [`QemuConfig::args`] turns it into the argument list for
//! [`qemu_binary`]. The machine is fixed: q35, no default devices, no user config, one
//! virtio disk given as an explicit `-blockdev` chain (nothing is probed), user networking
//! with an optional SSH port forward on 127.0.0.1, the first serial port on a Unix socket with
//! a log file, the guest agent's virtio-serial channel, an optional cloud-init seed in a second
//! read-only CD-ROM drive, QMP and VNC on Unix sockets (no TCP ports besides SSH), and the guest's
//! hostname in fw_cfg `opt/guest/hostname`. Never `-daemonize` (vmd owns the process) and
//! never `-k` (a keymap breaks VNC clients that send raw scancodes).
//!
//! Values inside QEMU's `key=value,…` option syntax have their commas doubled, so any path
//! is safe there. The `-blockdev` argument is JSON, which QEMU requires to be UTF-8: the
//! overlay path is converted lossily (vmd's state directory is UTF-8).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The QEMU system emulator vmd runs.
pub fn qemu_binary() -> &'static str {
    "qemu-system-x86_64"
}

/// The accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation; the guest CPU is the host's (`-cpu host`).
    Kvm,
    /// Emulation; the guest CPU is QEMU's richest model (`-cpu max`).
    Tcg,
}

impl Accel {
    /// The name QEMU uses (`kvm`, `tcg`).
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }
}

/// Everything that varies between VMs' QEMU command lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// VM name (a DNS label): QEMU's `-name` and the guest's hostname via fw_cfg.
    pub name: String,
    /// Number of vCPUs.
    pub cpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Where the guest's RAM lives.
    pub ram: GuestRam,
    /// Accelerator.
    pub accel: Accel,
    /// The VM's qcow2 overlay; its backing file is recorded in it with an explicit format.
    pub overlay: PathBuf,
    /// QMP listening socket (QEMU creates it).
    pub qmp_socket: PathBuf,
    /// First serial port as a listening Unix socket (QEMU creates it).
    pub console_socket: PathBuf,
    /// File QEMU appends all serial output to.
    pub console_log: PathBuf,
    /// VNC listening socket (QEMU creates it).
    pub vnc_socket: PathBuf,
    /// NICs: the user-mode one with its port forwards, and taps on lab networks.
    pub net: super::netargs::NetArgs,
    /// User QEMU switches to (`-runas`) once it has opened its files; for vmd running as root.
    pub runas: Option<String>,
    /// Enables QEMU's seccomp sandbox: no obsolete syscalls, no spawning, no resource
    /// control, and no privilege changes unless `runas` needs them.
    pub sandbox: bool,
    /// ISO inserted in the CD-ROM drive (the drive always exists, so media can change at run
    /// time).
    pub cdrom: Option<PathBuf>,
    /// Boot the CD-ROM before the disk (install VMs).
    pub cd_first: bool,
    /// UEFI firmware image (`-bios`); `None` boots SeaBIOS.
    pub uefi_firmware: Option<PathBuf>,
    /// The cloud-init seed ISO, inserted read-only in a second CD-ROM drive.
    pub seed: Option<PathBuf>,
    /// The guest agent's channel (virtio-serial port `org.qemu.guest_agent.0`) as a
    /// listening Unix socket (QEMU creates it).
    pub agent_socket: PathBuf,
}

/// Where a guest's RAM lives. Both are the memory backend [`RAM_ID`], so the RAM block of a
/// template and of its clones has the same name, which migration matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRam {
    /// A shared memfd (`memory-backend-memfd,share=on`): migration with `x-ignore-shared`
    /// leaves it out of the stream, and vmd copies it from `/proc/PID/fd` into a template.
    Memfd,
    /// A template's RAM file mapped privately (`share=off`): clones share its pages until
    /// they write them. QEMU waits for the saved device state (`-incoming defer`).
    Restore(PathBuf),
}

/// The id of the memory backend of guest RAM.
pub const RAM_ID: &str = "vmd-ram";

/// The QEMU device id of the CD-ROM drive (for QMP media changes).
pub const CDROM_ID: &str = "cd0";

/// The QEMU device id of the cloud-init seed's CD-ROM drive.
pub const SEED_ID: &str = "seed0";

impl QemuConfig {
    /// The arguments for [`qemu_binary`] (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let mut argv = Argv::default();
        self.machine(&mut argv);
        self.devices(&mut argv);
        self.control(&mut argv);
        self.confinement(&mut argv);
        argv.0
    }

    fn machine(&self, argv: &mut Argv) {
        argv.pair(
            "-name",
            format!("guest={},debug-threads=on", escape_str(&self.name)),
        );
        argv.flag("-nodefaults");
        argv.flag("-no-user-config");
        argv.pair("-msg", "timestamp=on");
        argv.pair("-machine", format!("q35,memory-backend={RAM_ID}"));
        argv.pair("-accel", self.accel.as_str());
        argv.pair("-cpu", self.accel.cpu_model());
        argv.pair("-smp", self.cpus.to_string());
        argv.pair("-m", self.memory_mib.to_string());
        self.ram(argv);
        if self.net.starts_paused() {
            argv.flag("-S");
        }
        if let Some(firmware) = &self.uefi_firmware {
            argv.pair("-bios", firmware.as_os_str());
        }
    }

    fn ram(&self, argv: &mut Argv) {
        let size = format!("id={RAM_ID},size={}M", self.memory_mib);
        match &self.ram {
            GuestRam::Memfd => {
                argv.pair("-object", format!("memory-backend-memfd,{size},share=on"));
            }
            GuestRam::Restore(file) => {
                argv.pair(
                    "-object",
                    concat(&[
                        format!("memory-backend-file,{size},share=off,mem-path=").as_ref(),
                        &escape(file.as_os_str()),
                    ]),
                );
                argv.pair("-incoming", "defer");
            }
        }
    }

    fn devices(&self, argv: &mut Argv) {
        let (disk_index, cd_index) = if self.cd_first { (2, 1) } else { (1, 2) };
        argv.pair("-blockdev", self.blockdev_json());
        argv.pair(
            "-device",
            format!("virtio-blk-pci,drive=disk0,bootindex={disk_index}"),
        );
        let mut cd = format!("ide-cd,id={CDROM_ID},bus=ide.1,bootindex={cd_index}");
        if let Some(iso) = &self.cdrom {
            let filename = serde_json::Value::from(iso.to_string_lossy());
            argv.pair(
                "-blockdev",
                format!(
                    r#"{{"driver":"raw","node-name":"cdmedia","read-only":true,"file":{{"driver":"file","filename":{filename},"read-only":true}}}}"#
                ),
            );
            cd.push_str(",drive=cdmedia");
        }
        argv.pair("-device", cd);
        if let Some(seed) = &self.seed {
            let filename = serde_json::Value::from(seed.to_string_lossy());
            argv.pair(
                "-blockdev",
                format!(
                    r#"{{"driver":"raw","node-name":"seed","read-only":true,"file":{{"driver":"file","filename":{filename},"read-only":true}}}}"#
                ),
            );
            argv.pair(
                "-device",
                format!("ide-cd,id={SEED_ID},bus=ide.2,drive=seed"),
            );
        }
        for (flag, value) in self.net.args() {
            argv.pair(flag, value);
        }
        argv.pair("-device", "virtio-rng-pci");
        // Lets a guest kernel report a panic (GUEST_PANICKED), which vmd turns into `crashed`.
        argv.pair("-device", "pvpanic");
        argv.pair(
            "-fw_cfg",
            format!("name=opt/guest/hostname,string={}", escape_str(&self.name)),
        );
        // VNC needs a graphics device; std VGA also shows SeaBIOS's text output.
        argv.pair("-device", "VGA");
    }

    fn control(&self, argv: &mut Argv) {
        argv.pair("-display", "none");
        argv.pair(
            "-vnc",
            concat(&["unix:".as_ref(), &escape(self.vnc_socket.as_os_str())]),
        );
        argv.pair(
            "-chardev",
            concat(&[
                "socket,id=serial0,path=".as_ref(),
                &escape(self.console_socket.as_os_str()),
                ",server=on,wait=off,logfile=".as_ref(),
                &escape(self.console_log.as_os_str()),
                ",logappend=on".as_ref(),
            ]),
        );
        argv.pair("-serial", "chardev:serial0");
        argv.pair(
            "-chardev",
            concat(&[
                "socket,id=agent0,path=".as_ref(),
                &escape(self.agent_socket.as_os_str()),
                ",server=on,wait=off".as_ref(),
            ]),
        );
        argv.pair("-device", "virtio-serial-pci,id=vser0");
        argv.pair(
            "-device",
            "virtserialport,bus=vser0.0,chardev=agent0,name=org.qemu.guest_agent.0",
        );
        argv.pair(
            "-qmp",
            concat(&[
                "unix:".as_ref(),
                &escape(self.qmp_socket.as_os_str()),
                ",server=on,wait=off".as_ref(),
            ]),
        );
    }

    fn confinement(&self, argv: &mut Argv) {
        if self.sandbox {
            // QEMU installs the filter before -runas switches user, so setuid/setgid must
            // stay allowed when runas is set (QEMU 7.2 dies of SIGSYS otherwise).
            let privileges = if self.runas.is_some() {
                ""
            } else {
                ",elevateprivileges=deny"
            };
            argv.pair(
                "-sandbox",
                format!("on,obsolete=deny{privileges},spawn=deny,resourcecontrol=deny"),
            );
        }
        if let Some(user) = &self.runas {
            argv.pair("-runas", user.as_str());
        }
    }

    fn blockdev_json(&self) -> String {
        // Written by hand for a stable key order; the Value quotes and escapes the path.
        // Guest TRIM and written zeros free host space instead of growing the qcow2.
        let filename = serde_json::Value::from(self.overlay.to_string_lossy());
        format!(
            r#"{{"driver":"qcow2","node-name":"disk0","discard":"unmap","detect-zeroes":"unmap","file":{{"driver":"file","filename":{filename},"discard":"unmap"}}}}"#
        )
    }
}

/// An argv under construction.
#[derive(Default)]
struct Argv(Vec<OsString>);

impl Argv {
    fn flag(&mut self, flag: &str) {
        self.0.push(flag.into());
    }

    fn pair(&mut self, flag: &str, value: impl Into<OsString>) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }
}

/// Doubles commas so `value` stays one value in QEMU's `key=value,…` syntax.
fn escape(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        out.push(byte);
        if byte == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

fn escape_str(value: &str) -> String {
    value.replace(',', ",,")
}

fn concat(parts: &[&OsStr]) -> OsString {
    parts.iter().fold(OsString::new(), |mut acc, part| {
        acc.push(part);
        acc
    })
}

#[cfg(test)]
#[path = "argv_tests.rs"]
mod tests;
