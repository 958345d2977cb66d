//! `vmctl user show NAME`: one account, its quotas (use / limit) and VMs (`user.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the account as key/value lines or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let user = ctx.connect().await?.user_get(name).await?;
    ctx.out.object(&user, output::user::details)
}
