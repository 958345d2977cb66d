//! `vmctl login USER [--password-stdin]`: checks a password and prints a session token
//! (`auth.login`), e.g. `export VMD_TOKEN=$(vmctl login ann --password-stdin <<<"$PW")`.
//!
//! The login is sent without `--token`/`$VMD_TOKEN`: an expired token must not stand in the
//! way of getting a new one.

use vm_proto::api::VmdApiClient;
use vm_proto::types::Login;

use super::{print_secret, Ctx};
use crate::cli::LoginArgs;
use crate::error::CliError;
use crate::password::{self, Source};

/// Reads the password, logs in and prints the session token.
pub async fn run(ctx: &Ctx, args: LoginArgs) -> Result<(), CliError> {
    let password = password::read(Source::pick(args.password_stdin, Source::Prompt))?;
    password::check_not_empty(&password)?;
    let request = Login {
        user: args.user,
        password,
    };
    let client = crate::client::connect(&ctx.socket, None).await?;
    let secret = client.auth_login(request).await?;
    let note = format!(
        "session token of {} (shown once; use it as --token or VMD_TOKEN)",
        secret.info.user
    );
    print_secret(ctx, &secret, &note)
}
