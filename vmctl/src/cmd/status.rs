//! `vmctl status`: the daemon's `system.info`, with a warning when its state is inconsistent.

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the overview; warns on stderr (table mode) about consistency issues.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let info = ctx.connect().await?.system_info().await?;
    ctx.out.object(&info, output::system::details)?;
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
