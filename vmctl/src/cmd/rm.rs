//! `vmctl rm NAME...`: deletes stopped VMs and their overlays (`vm.remove`), in order.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the VMs one by one, confirming each; stops at the first failure.
pub async fn run(ctx: &Ctx, names: Vec<String>) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    super::remove_each(ctx, "vm", names, |name| client.vm_remove(name)).await
}
