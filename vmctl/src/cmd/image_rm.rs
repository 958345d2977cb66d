//! `vmctl image rm NAME`: deletes a base image no VM uses (`image.remove`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Removes the image and confirms.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    ctx.connect().await?.image_remove(name.clone()).await?;
    ctx.out.removed("image", &name)
}
