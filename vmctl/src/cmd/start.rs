//! `vmctl start NAME`: starts a stopped or crashed VM (`vm.start`); returns once QEMU runs it.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Starts the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_start(name).await?;
    ctx.out.result(&vm, output::vm::details)
}
