//! `create`: `vm.create` on a 64 MiB and on a 20 GiB base, `vm.wipe`, `vm.remove`, and the
//! floor of a create, `qemu-img create` of the same overlay, interleaved rep by rep.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{json, Value};

use super::{create_vm, remove_vm, timed, Ctx};
use crate::daemon::Daemon;
use crate::fixtures::{LARGE, SMALL};
use crate::floor::qemu_img_create;
use crate::report::{Report, Unit};

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "create")?;
    let images = ctx.fixtures.import(&d.rpc, &[SMALL, LARGE])?;
    let bases = [base_path(&images[0])?, base_path(&images[1])?];
    let scratch = tempfile::Builder::new()
        .prefix("vmd-bench-img-")
        .tempdir()?;
    let reps = ctx.opts.reps;
    for i in 0..reps {
        for (image, base) in [SMALL, LARGE].into_iter().zip(&bases) {
            let name = format!("{image}{i}");
            let (t, _) = timed(|| create_vm(&d.rpc, &name, image))?;
            report.sample(
                &format!("create.{image}"),
                Unit::Ms,
                &format!("vm.create on the {} base", size_of(image)),
                t,
            );
            let overlay = scratch.path().join(format!("{name}.qcow2"));
            let (t, _) = timed(|| qemu_img_create(base, &overlay))?;
            report.sample(
                &format!("floor.qemu_img.{image}"),
                Unit::Ms,
                &format!(
                    "qemu-img create of an overlay on the {} base",
                    size_of(image)
                ),
                t,
            );
        }
    }
    for i in 0..reps {
        let (t, _) = timed(|| d.rpc.call("vm.wipe", json!([format!("{SMALL}{i}")])))?;
        report.sample("wipe", Unit::Ms, "vm.wipe (new overlay, rename)", t);
    }
    for i in 0..reps {
        let (t, _) = timed(|| remove_vm(&d.rpc, &format!("{SMALL}{i}")))?;
        report.sample("rm", Unit::Ms, "vm.remove of a stopped VM", t);
        remove_vm(&d.rpc, &format!("{LARGE}{i}"))?;
    }
    Ok(())
}

fn base_path(image: &Value) -> anyhow::Result<PathBuf> {
    image["path"]
        .as_str()
        .map(PathBuf::from)
        .context("image without a path")
}

fn size_of(image: &str) -> &'static str {
    if image == SMALL {
        "64 MiB"
    } else {
        "20 GiB"
    }
}
