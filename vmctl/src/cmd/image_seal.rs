//! `vmctl image seal NAME`: turns an installed base into a read-only one (`image.seal`).
//!
//! Its install VM must be stopped; the daemon removes it and keeps its disk as the base.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Seals the image and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let image = ctx.connect().await?.image_seal(name).await?;
    ctx.out.result(&image, output::image::details)
}
