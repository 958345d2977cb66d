//! `vmctl iso detach VM`: ejects the VM's ISO (`vm.detach_iso`); live while the VM runs.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Ejects the ISO and prints the VM (nothing with `-q`).
pub async fn run(ctx: &Ctx, vm: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_detach_iso(vm).await?;
    ctx.out.result(&vm, output::vm::details)
}
