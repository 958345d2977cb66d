//! `vmctl status`: the daemon's `system.info` and who the caller is (`auth.whoami`), with a
//! warning when the daemon's state is inconsistent.
//!
//! JSON mode prints `system.info` alone, as before; `vmctl whoami` has the identity. In table
//! mode a failed `auth.whoami` shows its error in the `user` line instead of failing.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the overview; warns on stderr (table mode) about consistency issues.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let client = ctx.connect().await?;
    let info = client.system_info().await?;
    if ctx.out.is_json() {
        ctx.out.object(&info, output::system::details)?;
    } else {
        let me = client
            .auth_whoami()
            .await
            .map_err(|e| CliError::from(e).to_string());
        ctx.out
            .object(&info, |info| output::system::with_identity(info, &me))?;
    }
    let count = info.issues.len();
    if count > 0 && !ctx.out.is_json() {
        let what = if count == 1 {
            "inconsistency"
        } else {
            "inconsistencies"
        };
        eprintln!("vmctl: warning: vmd found {count} {what} between its database and its files at start-up");
    }
    Ok(())
}
