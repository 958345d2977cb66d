//! `vmctl iso attach VM ISO`: inserts ISO into the VM's CD-ROM drive (`vm.attach_iso`),
//! replacing the one inserted; live while the VM runs, for its next start while it is stopped.

use vm_proto::api::VmdApiClient;
use vm_proto::types::IsoAttach;

use super::Ctx;
use crate::cli::AttachArgs;
use crate::error::CliError;
use crate::output;

/// Inserts the ISO and prints the VM (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: AttachArgs) -> Result<(), CliError> {
    let request = IsoAttach {
        vm: args.vm,
        iso: args.iso,
    };
    let vm = ctx.connect().await?.vm_attach_iso(request).await?;
    ctx.out.result(&vm, output::vm::details)
}
