//! `vmctl user rm NAME [--force]`: removes an account (`user.remove`); with `--force` also
//! its VMs, private images and tokens.

use vm_proto::api::VmdApiClient;
use vm_proto::types::UserRemove;

use super::Ctx;
use crate::cli::UserRmArgs;
use crate::error::CliError;
use crate::output;

/// Removes the account and says what went with it (JSON: the `UserRemoved` object).
pub async fn run(ctx: &Ctx, args: UserRmArgs) -> Result<(), CliError> {
    let request = UserRemove {
        name: args.name,
        force: args.force,
    };
    let gone = ctx.connect().await?.user_remove(request).await?;
    ctx.out.done(&gone, &output::user::removed(&gone))
}
