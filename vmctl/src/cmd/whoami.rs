//! `vmctl whoami`: who vmd takes the caller for, with which role and quota use
//! (`auth.whoami`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the caller's identity as key/value lines or JSON.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let me = ctx.connect().await?.auth_whoami().await?;
    ctx.out.object(&me, output::user::whoami)
}
