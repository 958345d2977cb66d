//! `vmctl net rm NAME...`: deletes networks no VM has a NIC on (`net.remove`), in order.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the networks one by one, confirming each; stops at the first failure.
pub async fn run(ctx: &Ctx, names: Vec<String>) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    super::remove_each(ctx, "network", names, |name| client.net_remove(name)).await
}
