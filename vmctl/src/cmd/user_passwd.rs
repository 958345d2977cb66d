//! `vmctl user passwd NAME [--password-stdin | --clear]`: sets or removes an account's
//! password (`user.passwd`); the daemon ends the account's sessions.
//!
//! Without `--password-stdin`, a terminal is prompted twice with echo off; a stdin that is
//! not a terminal is read like `--password-stdin`. An empty password exits 6: removing the
//! password takes `--clear`. With a token (`--token`/`VMD_TOKEN`) on a terminal, the current
//! password is asked first: vmd wants it from users who change their own password with a
//! token or session rather than their local login.

use vm_proto::api::VmdApiClient;
use vm_proto::types::UserPasswd;
use vm_proto::{ApiError, ErrorCode};

use super::Ctx;
use crate::cli::UserPasswdArgs;
use crate::error::CliError;
use crate::password::{self, Source};

/// Sets (or clears) the password and confirms.
pub async fn run(ctx: &Ctx, args: UserPasswdArgs) -> Result<(), CliError> {
    let current_password = match ctx.token.is_some() && !args.password_stdin {
        true if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            eprint!("current ");
            Some(password::read(Source::Prompt)?)
        }
        _ => None,
    };
    let password = match args.clear {
        true => None,
        false => Some(read(args.password_stdin)?),
    };
    let cleared = password.is_none();
    let request = UserPasswd {
        name: args.name.clone(),
        password,
        current_password,
    };
    ctx.connect().await?.user_passwd(request).await?;
    let what = if cleared {
        "removed the password of"
    } else {
        "set the password of"
    };
    let value = serde_json::json!({ "user": args.name, "has_password": !cleared });
    ctx.out.done(&value, &format!("{what} user {}", args.name))
}

/// The new password; an empty one exits 6 and points at `--clear`.
fn read(password_stdin: bool) -> Result<String, CliError> {
    let password = password::read(Source::pick(password_stdin, Source::PromptTwice))?;
    if password.is_empty() {
        let err = ApiError::new(ErrorCode::InvalidArgument, "the password is empty");
        return Err(err.with_hint("to remove the password, use --clear").into());
    }
    password::check_new(&password)?;
    Ok(password)
}
