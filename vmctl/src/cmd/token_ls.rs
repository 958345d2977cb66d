//! `vmctl token ls`: the caller's tokens and sessions, everyone's for admins (`token.list`).
//! Never a secret.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output::{self, emit};

/// Prints the tokens as a table, ids one per line (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let tokens = ctx.connect().await?.token_list().await?;
    if ctx.out.quiet && !ctx.out.is_json() {
        return tokens.iter().try_for_each(|t| emit(&t.id.to_string()));
    }
    ctx.out.list(&tokens, |t| &t.user, output::token::table)
}
