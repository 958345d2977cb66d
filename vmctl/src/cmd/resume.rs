//! `vmctl resume NAME`: resumes a paused VM (`vm.resume`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Resumes the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_resume(name).await?;
    ctx.out.result(&vm, output::vm::details)
}
