//! `vmctl show NAME`: every field of one VM (`vm.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the VM as key/value lines or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let vm = ctx.connect().await?.vm_get(name).await?;
    ctx.out.object(&vm, output::vm::details)
}
