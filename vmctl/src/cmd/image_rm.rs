//! `vmctl image rm NAME...`: deletes base images no VM uses (`image.remove`), in order.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the images one by one, confirming each; stops at the first failure.
pub async fn run(ctx: &Ctx, names: Vec<String>) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    super::remove_each(ctx, "image", names, |name| client.image_remove(name)).await
}
