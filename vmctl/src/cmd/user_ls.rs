//! `vmctl user ls`: every account with its quota use (`user.list`); users see themselves.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the accounts as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let users = ctx.connect().await?.user_list().await?;
    ctx.out.list(&users, |u| &u.name, output::user::table)
}
