//! `vmctl iso rm NAME...`: deletes ISOs no VM has inserted (`iso.remove`), in order.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the ISOs one by one, confirming each; stops at the first failure.
pub async fn run(ctx: &Ctx, names: Vec<String>) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    super::remove_each(ctx, "iso", names, |name| client.iso_remove(name)).await
}
