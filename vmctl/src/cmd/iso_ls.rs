//! `vmctl iso ls`: every ISO in the library (`iso.list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the ISOs as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let isos = ctx.connect().await?.iso_list().await?;
    ctx.out.list(&isos, |iso| &iso.name, output::iso::table)
}
