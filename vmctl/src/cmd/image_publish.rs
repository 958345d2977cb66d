//! `vmctl image publish VM NEWBASE`: flattens a stopped VM's disk (overlay and base) into a
//! new sealed base (`image.publish`); the VM is unchanged. `--public`/`--private` choose who
//! may use it; without either the daemon decides (public for admins, private for users).
//! `--os` (default: the VM's base's) and `--description` describe it.

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::ImagePublish;

use super::Ctx;
use crate::cli::{visibility, PublishArgs};
use crate::error::CliError;
use crate::output::{self, progress};

/// Publishes the VM's disk and prints the new image (nothing with `-q`); a spinner runs on a
/// terminal while the daemon copies the disk.
pub async fn run(ctx: &Ctx, args: PublishArgs) -> Result<(), CliError> {
    validate_name("image", &args.name).map_err(CliError::invalid)?;
    let client = ctx.connect().await?;
    let spinner = progress::spinner(format!("publishing {}", args.name), ctx.out.quiet);
    super::image_set::check_description(&args.info)?;
    let request = ImagePublish {
        vm: args.vm,
        name: args.name,
        public: visibility(args.public, args.private),
        cloud_init: args.info.cloud_init_flag(),
        os: args.info.os,
        description: args.info.description,
        generalize: args.generalize,
    };
    let image = client.image_publish(request).await;
    spinner.finish_and_clear();
    ctx.out.result(&image?, output::image::details)
}
