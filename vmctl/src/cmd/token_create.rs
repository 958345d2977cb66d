//! `vmctl token create [--user NAME] [--ttl DURATION] [--name LABEL]`: a new API token
//! (`token.create`). Its secret is printed this once.

use vm_proto::api::VmdApiClient;
use vm_proto::types::TokenCreate;

use super::{print_secret, Ctx};
use crate::cli::TokenCreateArgs;
use crate::error::CliError;
use crate::values::parse_duration_secs;

/// Creates the token and prints its secret (JSON: the whole `TokenSecret`).
pub async fn run(ctx: &Ctx, args: TokenCreateArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let secret = ctx.connect().await?.token_create(request).await?;
    let note = format!(
        "token {} of {} (the secret is shown once; use it as --token or VMD_TOKEN)",
        secret.info.id, secret.info.user
    );
    print_secret(ctx, &secret, &note)
}

/// Checks `--ttl` and builds the `token.create` parameters.
fn request(args: TokenCreateArgs) -> Result<TokenCreate, CliError> {
    Ok(TokenCreate {
        user: args.user,
        ttl_secs: args.ttl.as_deref().map(parse_duration_secs).transpose()?,
        name: args.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_becomes_seconds() {
        let args = |ttl: Option<&str>| TokenCreateArgs {
            user: Some("ann".into()),
            ttl: ttl.map(String::from),
            name: None,
        };
        assert_eq!(
            request(args(Some("30d"))).expect("valid").ttl_secs,
            Some(30 * 86_400)
        );
        assert_eq!(request(args(None)).expect("valid").ttl_secs, None);
        assert_eq!(request(args(Some("soon"))).expect_err("bad").exit_code(), 6);
    }
}
