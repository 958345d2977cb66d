//! `vmctl image import FILE --name NAME`: uploads FILE, then turns it into a base image.
//!
//! Checks that fail fast, before any byte is sent: the name is valid (exit 6), FILE is a
//! readable regular file (exit 6) whose first and last bytes say it is a disk image vmd accepts
//! (an ISO, a VMDK descriptor or an unrecognised file: exit 6, [`vm_proto::sniff`]), the
//! `--description` is valid (exit 6), no image has the name yet (exit 4). `--os` defaults to the daemon's guess from the name. Then the file is
//! streamed (`PUT /v1/uploads`, progress bar on a terminal) and `image.import` converts it.

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::sniff::UploadKind;
use vm_proto::types::ImageImport;

use super::Ctx;
use crate::cli::ImportArgs;
use crate::error::CliError;
use crate::output::{self, progress};
use crate::upload;

/// Uploads, imports and prints the new image (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: ImportArgs) -> Result<(), CliError> {
    validate_name("image", &args.name).map_err(CliError::invalid)?;
    super::image_set::check_description(&args.info)?;
    let source = upload::open(&args.file, UploadKind::Disk).await?;
    let client = ctx.connect().await?;
    super::ensure_absent(
        client.image_get(args.name.clone()).await,
        "image",
        &args.name,
    )?;
    let staged = super::stage(ctx, &client, source).await?;
    let spinner = progress::spinner(format!("importing {}", args.name), ctx.out.quiet);
    let image = client
        .image_import(ImageImport {
            name: args.name,
            upload_id: staged.upload_id,
            cloud_init: args.info.cloud_init_flag(),
            os: args.info.os,
            description: args.info.description,
        })
        .await;
    spinner.finish_and_clear();
    ctx.out.result(&image?, output::image::details)
}
