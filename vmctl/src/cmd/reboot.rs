//! `vmctl reboot NAME`: hardware reset of a running or paused VM (`vm.reboot`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Resets the guest and prints the VM (nothing with `-q`).
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_reboot(name).await?;
    ctx.out.result(&vm, output::vm::details)
}
