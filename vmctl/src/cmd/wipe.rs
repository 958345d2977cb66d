//! `vmctl wipe NAME`: resets a stopped VM's disk to a fresh overlay on its base (`vm.wipe`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Wipes the disk; confirms in table mode, prints the VM in JSON mode.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_wipe(name).await?;
    ctx.out.done(&vm, &format!("wiped vm {}", vm.name))
}
