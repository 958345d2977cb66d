//! `vmctl template rm NAME...`: deletes templates no VM is a clone of (`template.remove`),
//! in order.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the templates one by one, confirming each; stops at the first failure.
pub async fn run(ctx: &Ctx, names: Vec<String>) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    super::remove_each(ctx, "template", names, |name| client.template_remove(name)).await
}
