//! `vmctl template ls`: the templates the caller may use (`template.list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the templates as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let templates = ctx.connect().await?.template_list().await?;
    ctx.out
        .list(&templates, |t| &t.name, output::template::table)
}
