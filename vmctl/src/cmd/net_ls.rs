//! `vmctl net ls`: the networks the caller may use (`net.list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the networks as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let networks = ctx.connect().await?.net_list().await?;
    ctx.out
        .list(&networks, |net| &net.name, output::network::table)
}
