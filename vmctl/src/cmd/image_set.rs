//! `vmctl image set NAME [--os FAMILY] [--description TEXT] [--public|--private]`: changes
//! what people read about a base image, or who may use it (`image.set`), and prints it.
//!
//! Admins change any image; a user only their own private ones and cannot make them public.
//! `--description ""` clears the description. The description is checked here first (exit 6).

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::{validate_image_description, ImageSet};

use super::Ctx;
use crate::cli::{visibility, ImageInfoArgs, ImageSetArgs};
use crate::error::CliError;
use crate::output;

/// Changes the image and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: ImageSetArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let image = ctx.connect().await?.image_set(request).await?;
    ctx.out.result(&image, output::image::details)
}

/// Exit 6 for a description the daemon would refuse.
pub(super) fn check_description(info: &ImageInfoArgs) -> Result<(), CliError> {
    match &info.description {
        Some(text) => validate_image_description(text).map_err(CliError::invalid),
        None => Ok(()),
    }
}

/// Validates the arguments and builds the `image.set` parameters.
fn request(args: ImageSetArgs) -> Result<ImageSet, CliError> {
    validate_name("image", &args.name).map_err(CliError::invalid)?;
    check_description(&args.info)?;
    let request = ImageSet {
        name: args.name,
        cloud_init: args.info.cloud_init_flag(),
        os: args.info.os,
        description: args.info.description,
        public: visibility(args.public, args.private),
    };
    if request.is_empty() {
        return Err(CliError::invalid(
            "nothing to change: give --os, --description, --public, --private, --cloud-init or \
             --no-cloud-init",
        ));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, ImageCommand};
    use clap::Parser;
    use vm_proto::types::OsFamily;

    fn parse(argv: &[&str]) -> Result<ImageSet, CliError> {
        let cli = Cli::try_parse_from(argv).expect("parses");
        match cli.command {
            Command::Image(ImageCommand::Set(args)) => request(args),
            other => panic!("not image set: {other:?}"),
        }
    }

    #[test]
    fn flags_become_the_request() {
        let req = parse(&["vmctl", "image", "set", "b", "--os", "rhel", "--private"]);
        let req = req.expect("valid");
        assert_eq!(
            (req.os, req.description, req.public),
            (Some(OsFamily::Rhel), None, Some(false))
        );
        let req = parse(&["vmctl", "image", "set", "b", "--description", ""]).expect("clear");
        assert_eq!(req.description.as_deref(), Some(""));
    }

    #[test]
    fn bad_input_exits_6_or_2() {
        assert_eq!(
            parse(&["vmctl", "image", "set", "b"])
                .expect_err("refused")
                .exit_code(),
            6
        );
        let bad = parse(&["vmctl", "image", "set", "b", "--description", "a\tb"]);
        assert_eq!(bad.expect_err("refused").exit_code(), 6);
        let long = "x".repeat(201);
        let bad = parse(&["vmctl", "image", "set", "b", "--description", &long]);
        assert_eq!(bad.expect_err("refused").exit_code(), 6);
        let os = Cli::try_parse_from(["vmctl", "image", "set", "b", "--os", "beos"]);
        assert_eq!(os.expect_err("refused").exit_code(), 2);
    }
}
