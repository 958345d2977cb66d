//! `vmctl iso show NAME`: every field of one ISO (`iso.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the ISO as key/value lines or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let iso = ctx.connect().await?.iso_get(name).await?;
    ctx.out.object(&iso, output::iso::details)
}
