//! `vmctl rm NAME`: deletes a stopped VM and its overlay (`vm.remove`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the VM and confirms.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    ctx.connect().await?.vm_remove(name.clone()).await?;
    ctx.out.removed("vm", &name)
}
