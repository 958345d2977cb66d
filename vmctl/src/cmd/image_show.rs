//! `vmctl image show NAME`: every field of one base image (`image.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the image as key/value lines or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let image = ctx.connect().await?.image_get(name).await?;
    ctx.out.object(&image, output::image::details)
}
