//! `vmctl pause NAME`: pauses a running VM's vCPUs (`vm.pause`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Pauses the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_pause(name).await?;
    ctx.out.result(&vm, output::vm::details)
}
