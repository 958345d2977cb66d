//! `vmctl image ls`: every base image (`image.list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the images as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let images = ctx.connect().await?.image_list().await?;
    ctx.out
        .list(&images, |image| &image.name, output::image::table)
}
