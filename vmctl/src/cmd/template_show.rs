//! `vmctl template show NAME`: one template with its clones (`template.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the template as key/value lines, or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let template = ctx.connect().await?.template_get(name).await?;
    ctx.out.object(&template, output::template::details)
}
