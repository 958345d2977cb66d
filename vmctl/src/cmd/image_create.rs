//! `vmctl image create NAME --size SIZE --iso ISO`: an unsealed base and its install VM
//! (`image.create`).
//!
//! The daemon makes a blank `--size` disk and a stopped install VM called NAME that boots the
//! ISO first; the user starts it, installs the OS, stops it and seals the image. Names and
//! sizes are checked here first (exit 6); `--memory` follows the rules of `create`. `--os`
//! defaults to the daemon's guess from the name, else from the ISO's.

use vm_proto::api::VmdApiClient;
use vm_proto::names::{parse_size, validate_name};
use vm_proto::types::{Firmware, ImageCreate};

use super::Ctx;
use crate::cli::ImageCreateArgs;
use crate::error::CliError;
use crate::output;

/// Creates the image and its install VM, prints the image (nothing with `-q`) and, in table
/// mode, what to do next on stderr.
pub async fn run(ctx: &Ctx, args: ImageCreateArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let image = ctx.connect().await?.image_create(request).await?;
    ctx.out.result(&image, output::image::details)?;
    if !ctx.out.quiet && !ctx.out.is_json() {
        eprintln!("{}", next_steps(&image.name));
    }
    Ok(())
}

/// Validates the arguments and builds the `image.create` parameters.
fn request(args: ImageCreateArgs) -> Result<ImageCreate, CliError> {
    validate_name("image", &args.name).map_err(CliError::invalid)?;
    validate_name("iso", &args.iso).map_err(CliError::invalid)?;
    super::image_set::check_description(&args.info)?;
    Ok(ImageCreate {
        name: args.name,
        size_bytes: parse_size(&args.size).map_err(CliError::invalid)?,
        iso: args.iso,
        firmware: args.firmware.map(Firmware::from),
        cpus: args.cpus,
        memory_mib: args
            .memory
            .as_deref()
            .map(super::create::memory_mib)
            .transpose()?,
        cloud_init: args.info.cloud_init_flag(),
        os: args.info.os,
        description: args.info.description,
    })
}

/// The install flow, one line.
fn next_steps(name: &str) -> String {
    format!(
        "install vm {name} created: vmctl start {name} && vmctl console {name}; \
         when done: vmctl stop {name} && vmctl image seal {name}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::FirmwareArg;

    fn args(size: &str, memory: Option<&str>) -> ImageCreateArgs {
        ImageCreateArgs {
            name: "lab".into(),
            size: size.into(),
            iso: "guest".into(),
            firmware: Some(FirmwareArg::Uefi),
            cpus: None,
            memory: memory.map(String::from),
            info: crate::cli::ImageInfoArgs::default(),
        }
    }

    #[test]
    fn sizes_become_bytes_and_mib() {
        let req = request(args("1G", Some("1G"))).expect("valid");
        assert_eq!((req.size_bytes, req.memory_mib), (1 << 30, Some(1024)));
        assert_eq!((req.firmware, req.cpus), (Some(Firmware::Uefi), None));
        assert_eq!(req.iso, "guest");
        assert_eq!(request(args("20G", None)).expect("valid").memory_mib, None);
    }

    #[test]
    fn bad_input_exits_6() {
        for (size, memory) in [("lots", None), ("1G", Some("1000K")), ("1G", Some("x"))] {
            let err = request(args(size, memory)).expect_err(size);
            assert_eq!(err.exit_code(), 6, "{size} {memory:?}");
        }
        let bad_iso = ImageCreateArgs {
            iso: "Guest.iso".into(),
            ..args("1G", None)
        };
        assert_eq!(request(bad_iso).expect_err("iso").exit_code(), 6);
    }

    #[test]
    fn next_steps_name_the_commands() {
        assert_eq!(
            next_steps("lab"),
            "install vm lab created: vmctl start lab && vmctl console lab; \
             when done: vmctl stop lab && vmctl image seal lab"
        );
    }
}
