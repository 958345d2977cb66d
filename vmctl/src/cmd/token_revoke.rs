//! `vmctl token revoke ID`: revokes a token or session (`token.revoke`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;

/// Revokes the token and confirms.
pub async fn run(ctx: &Ctx, id: u64) -> Result<(), CliError> {
    ctx.connect().await?.token_revoke(id).await?;
    let value = serde_json::json!({ "revoked": id, "kind": "token" });
    ctx.out.done(&value, &format!("revoked token {id}"))
}
