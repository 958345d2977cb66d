//! `vmctl logout`: ends the session of `--token`/`$VMD_TOKEN` (`auth.logout`); VMs tied to
//! it expire.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Ends the session and confirms; without a token there is nothing to end (exit 6).
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.token.is_none() {
        let err = CliError::invalid("no session to end: logout needs --token or VMD_TOKEN");
        return Err(err);
    }
    ctx.connect().await?.auth_logout().await?;
    let value = serde_json::json!({ "logged_out": true });
    ctx.out.done(&value, "logged out")
}
