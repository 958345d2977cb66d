//! The same work through libvirt (`virsh -c qemu:///system`, `<domain type='qemu'>`): define
//! a persistent domain, start and destroy it, create and destroy a transient one, `virsh list
//! --all` with 10, 100 and 1000 defined domains, and `virsh version` (virsh's own process and
//! connection cost, to compare with one vmd round trip). Domains mirror vmd's VMs: q35, TCG,
//! `-cpu max`, 1 vCPU, 128 MiB, a qcow2 overlay on virtio-blk, user networking on
//! virtio-net, serial on a Unix socket with a log file, VNC on a Unix socket, VGA, virtio-rng,
//! no USB, no balloon. Every virsh command is a whole process, as `vmctl` is.
//!
//! Skipped (with a note saying why) when `virsh` is missing or libvirtd does not answer; a
//! virsh command that fails or takes over 30 s ends the comparison with a note, not a failure.
//! With `--start-libvirtd`, an unreachable libvirtd is started in the foreground (with
//! virtlogd) and killed by pid at the end. Every `vmdbench-*` domain is removed at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::bail;

use crate::report::{Report, Unit};
use crate::scenarios::{timed, Ctx, MEMORY_MIB};

mod control;

pub use control::Libvirt;

/// Domain name prefix; any domain with it belongs to the bench.
const PREFIX: &str = "vmdbench-";
/// Domains defined per virsh invocation while setting up the list.
const BATCH: usize = 100;

/// Runs the group, or notes why libvirt cannot be measured here.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let Some(lv) = Libvirt::connect(ctx.opts.start_libvirtd, report)? else {
        return Ok(());
    };
    lv.remove_bench_domains();
    let dir = Workdir::new(ctx)?;
    let result = measure(ctx, &lv, &dir, report);
    lv.remove_bench_domains();
    // libvirt is an optional comparison: a host where it misbehaves (see
    // docs/performance.md) must not fail the benchmark of vmd.
    if let Err(err) = result {
        report.note(format!("libvirt measurement incomplete: {err:#}"));
    }
    Ok(())
}

fn measure(ctx: &Ctx, lv: &Libvirt, dir: &Workdir, report: &mut Report) -> anyhow::Result<()> {
    for _ in 0..ctx.opts.reps {
        let (t, _) = timed(|| lv.virsh(&["version"]))?;
        report.sample(
            "libvirt.version",
            Unit::Ms,
            "virsh version process (connect, one call)",
            t,
        );
    }
    persistent(ctx, lv, dir, report)?;
    transient(ctx, lv, dir, report)?;
    list(ctx, lv, dir, report)
}

fn persistent(ctx: &Ctx, lv: &Libvirt, dir: &Workdir, report: &mut Report) -> anyhow::Result<()> {
    for i in 0..ctx.opts.reps {
        let xml = dir.domain(&format!("p{i}"))?;
        let (t, _) = timed(|| lv.virsh(&["define", &xml]))?;
        report.sample(
            "libvirt.define",
            Unit::Ms,
            "virsh define of a persistent domain",
            t,
        );
    }
    let name = format!("{PREFIX}p0");
    for _ in 0..ctx.opts.reps {
        let (t, _) = timed(|| lv.virsh(&["start", &name]))?;
        report.sample(
            "libvirt.start",
            Unit::Ms,
            "virsh start of the defined domain",
            t,
        );
        let (t, _) = timed(|| lv.virsh(&["destroy", &name]))?;
        report.sample(
            "libvirt.destroy",
            Unit::Ms,
            "virsh destroy (forced stop)",
            t,
        );
    }
    for i in 0..ctx.opts.reps {
        let (t, _) = timed(|| lv.virsh(&["undefine", &format!("{PREFIX}p{i}")]))?;
        report.sample("libvirt.undefine", Unit::Ms, "virsh undefine", t);
    }
    Ok(())
}

fn transient(ctx: &Ctx, lv: &Libvirt, dir: &Workdir, report: &mut Report) -> anyhow::Result<()> {
    let xml = dir.domain("t0")?;
    let name = format!("{PREFIX}t0");
    for _ in 0..ctx.opts.reps {
        let (t, _) = timed(|| lv.virsh(&["create", &xml]))?;
        report.sample(
            "libvirt.create_transient",
            Unit::Ms,
            "virsh create (define + start) of a transient domain",
            t,
        );
        let (t, _) = timed(|| lv.virsh(&["destroy", &name]))?;
        report.sample(
            "libvirt.destroy_transient",
            Unit::Ms,
            "virsh destroy of the transient domain",
            t,
        );
    }
    Ok(())
}

fn list(ctx: &Ctx, lv: &Libvirt, dir: &Workdir, report: &mut Report) -> anyhow::Result<()> {
    let mut defined = 0;
    for &count in &ctx.opts.list_counts {
        let files = (defined..count)
            .map(|i| dir.domain(&format!("l{i:04}")))
            .collect::<anyhow::Result<Vec<String>>>()?;
        for batch in files.chunks(BATCH) {
            let script: Vec<String> = batch.iter().map(|f| format!("define {f}")).collect();
            lv.virsh(&[&script.join(" ; ")])?;
        }
        defined = count;
        for _ in 0..ctx.opts.reps {
            let (t, out) = timed(|| lv.virsh(&["list", "--all", "--name"]))?;
            let listed = out.lines().filter(|l| l.starts_with(PREFIX)).count();
            if listed != count {
                bail!("virsh listed {listed} bench domains, expected {count}");
            }
            let what = format!("virsh list --all process, {count} domains");
            report.sample(&format!("libvirt.list.{count}"), Unit::Ms, &what, t);
        }
    }
    Ok(())
}

/// A directory libvirt's QEMU can reach (mode 0755) holding overlays and domain XML.
struct Workdir {
    dir: tempfile::TempDir,
    base: PathBuf,
}

impl Workdir {
    fn new(ctx: &Ctx) -> anyhow::Result<Workdir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("vmd-bench-libvirt-")
            .tempdir()?;
        crate::cleanup::register_dir(dir.path());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let base = dir.path().join("base.qcow2");
        std::fs::copy(&ctx.fixtures.small, &base)?;
        Ok(Workdir { dir, base })
    }

    /// Writes the XML of domain `PREFIX + id` (with a fresh overlay); returns its path.
    fn domain(&self, id: &str) -> anyhow::Result<String> {
        let name = format!("{PREFIX}{id}");
        let overlay = self.dir.path().join(format!("{name}.qcow2"));
        if !overlay.exists() {
            crate::floor::qemu_img_create(&self.base, &overlay)?;
        }
        let path = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, domain_xml(&name, &overlay, self.dir.path()))?;
        Ok(path.to_string_lossy().into_owned())
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        crate::procfs::kill_strays(self.dir.path());
        crate::cleanup::unregister_dir(self.dir.path());
    }
}

/// The domain that matches vmd's QEMU command line as closely as libvirt allows.
fn domain_xml(name: &str, overlay: &Path, dir: &Path) -> String {
    let (overlay, dir) = (overlay.display(), dir.display());
    format!(
        r#"<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{MEMORY_MIB}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='unix'>
      <source mode='bind' path='{dir}/{name}.console'/>
      <log file='{dir}/{name}.console.log' append='on'/>
    </serial>
    <graphics type='vnc'><listen type='socket'/></graphics>
    <video><model type='vga'/></video>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
</domain>
"#
    )
}

/// Whether `virsh` can be run at all.
fn virsh_installed() -> bool {
    Command::new("virsh")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How long one virsh command may take before libvirt counts as unusable here.
const VIRSH_TIMEOUT: Duration = Duration::from_secs(30);
