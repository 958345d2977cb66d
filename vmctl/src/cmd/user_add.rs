//! `vmctl user add NAME [--admin] [--uid UID] [--password-stdin]`: creates an account
//! (`user.add`), with a password read from stdin when asked.

use vm_proto::api::VmdApiClient;
use vm_proto::types::UserAdd;

use super::Ctx;
use crate::cli::UserAddArgs;
use crate::error::CliError;
use crate::output;
use crate::password::{self, Source};

/// Creates the account and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: UserAddArgs) -> Result<(), CliError> {
    // The name is checked by vmd: account names may be login names, which are not DNS labels.
    let password = match args.password_stdin {
        true => Some(new_password()?),
        false => None,
    };
    let request = UserAdd {
        name: args.name,
        admin: args.admin,
        uid: args.uid,
        password,
    };
    let user = ctx.connect().await?.user_add(request).await?;
    ctx.out.result(&user, output::user::details)
}

/// The password on stdin's first line, checked like any new password.
fn new_password() -> Result<String, CliError> {
    let password = password::read(Source::Stdin)?;
    password::check_not_empty(&password)?;
    password::check_new(&password)?;
    Ok(password)
}
