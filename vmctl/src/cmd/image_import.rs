//! `vmctl image import FILE --name NAME`: uploads FILE, then turns it into a base image.
//!
//! Checks that fail fast, before any byte is sent: the name is valid (exit 6), FILE is a
//! readable regular file (exit 6), no image has the name yet (exit 4). Then the file is
//! streamed (`PUT /v1/uploads`, progress bar on a terminal) and `image.import` converts it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vm_proto::api::VmdApiClient;
use vm_proto::names::{format_size, validate_name};
use vm_proto::types::ImageImport;
use vm_proto::{ApiError, ErrorCode};

use super::Ctx;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::{output, upload};

/// Uploads, imports and prints the new image (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: ImportArgs) -> Result<(), CliError> {
    validate_name("image", &args.name).map_err(CliError::invalid)?;
    let source = upload::open(&args.file).await?;
    let client = ctx.connect().await?;
    ensure_absent(client.image_get(args.name.clone()).await, &args.name)?;
    let chatty = !ctx.out.quiet && !ctx.out.is_json();
    let bar = bytes_bar(source.size, ctx.out.quiet);
    let staged = upload::send(&ctx.socket, source, bar.clone()).await;
    bar.finish_and_clear();
    let staged = staged?;
    if chatty {
        eprintln!(
            "uploaded {} (sha256 {})",
            format_size(staged.size_bytes),
            staged.sha256
        );
    }
    let spinner = spinner(format!("importing {}", args.name), ctx.out.quiet);
    let image = client
        .image_import(ImageImport {
            name: args.name,
            upload_id: staged.upload_id,
        })
        .await;
    spinner.finish_and_clear();
    ctx.out.result(&image?, output::image::details)
}

/// Fails with `already_exists` when `image.get` found the image; `not_found` is what we want.
fn ensure_absent<T>(
    found: Result<T, jsonrpsee::core::ClientError>,
    name: &str,
) -> Result<(), CliError> {
    match found.map_err(CliError::from) {
        Ok(_) => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("image {name} already exists"),
        )
        .with_hint(format!(
            "choose another --name, or remove it first with `vmctl image rm {name}`"
        ))
        .into()),
        Err(CliError::Api(err)) if err.kind() == ErrorCode::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Whether progress may be drawn: stderr is a terminal and `-q` was not given.
fn show_progress(quiet: bool) -> bool {
    !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A byte progress bar (bytes, rate, ETA) on stderr, or a hidden one.
fn bytes_bar(len: u64, quiet: bool) -> ProgressBar {
    if !show_progress(quiet) {
        return ProgressBar::hidden();
    }
    let template = "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A spinner with `message` on stderr while the daemon converts, or a hidden one.
fn spinner(message: String, quiet: bool) -> ProgressBar {
    if !show_progress(quiet) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner().with_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::core::ClientError;
    use jsonrpsee::types::ErrorObjectOwned;

    fn daemon_error(kind: ErrorCode) -> ClientError {
        let data = serde_json::json!({"kind": kind, "chain": ["boom"]});
        ClientError::Call(ErrorObjectOwned::owned(kind.code(), "boom", Some(data)))
    }

    #[test]
    fn existing_image_is_a_conflict() {
        let err = ensure_absent(Ok(()), "deb").expect_err("exists");
        assert_eq!(err.exit_code(), 4);
        assert_eq!(err.to_string(), "image deb already exists");
        assert!(ensure_absent::<()>(Err(daemon_error(ErrorCode::NotFound)), "deb").is_ok());
        let denied = ensure_absent::<()>(Err(daemon_error(ErrorCode::PermissionDenied)), "deb");
        assert_eq!(denied.expect_err("denied").exit_code(), 7);
    }
}
