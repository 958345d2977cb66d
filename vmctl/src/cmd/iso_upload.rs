//! `vmctl iso upload FILE [--name NAME]`: uploads FILE, then adds it to the ISO library.
//!
//! Without `--name` the name comes from the file name: its stem lowercased, characters other
//! than `a-z`, `0-9` and `-` replaced by `-`, leading and trailing `-` trimmed, cut to 63
//! characters (`Debian-12.5.0_amd64-netinst.iso` → `debian-12-5-0-amd64-netinst`).
//! Then the same flow as `image import`: checks that fail fast (name, readable regular file
//! with an ISO 9660 or UDF volume descriptor ([`vm_proto::sniff`]): exit 6; an ISO of that
//! name: exit 4), the upload (`PUT /v1/uploads?kind=iso`), and `iso.import`.

use std::path::Path;

use vm_proto::api::VmdApiClient;
use vm_proto::names::{validate_name, NAME_MAX_LEN};
use vm_proto::sniff::UploadKind;
use vm_proto::types::IsoImport;
use vm_proto::{ApiError, ErrorCode};

use super::Ctx;
use crate::cli::IsoUploadArgs;
use crate::error::CliError;
use crate::output::{self, progress};
use crate::upload;

/// Uploads, imports and prints the new ISO (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: IsoUploadArgs) -> Result<(), CliError> {
    let name = iso_name(args.name, &args.file)?;
    let source = upload::open(&args.file, UploadKind::Iso).await?;
    let client = ctx.connect().await?;
    super::ensure_absent(client.iso_get(name.clone()).await, "iso", &name)?;
    let staged = super::stage(ctx, &client, source).await?;
    let spinner = progress::spinner(format!("importing {name}"), ctx.out.quiet);
    let iso = client
        .iso_import(IsoImport {
            name,
            upload_id: staged.upload_id,
        })
        .await;
    spinner.finish_and_clear();
    ctx.out.result(&iso?, output::iso::details)
}

/// The `--name`, or the name derived from `file`; either must be valid (exit 6). A derived
/// name that is not gets a hint to pass `--name`.
fn iso_name(flag: Option<String>, file: &Path) -> Result<String, CliError> {
    if let Some(name) = flag {
        validate_name("iso", &name).map_err(CliError::invalid)?;
        return Ok(name);
    }
    let name = name_from_file(file);
    match validate_name("iso", &name) {
        Ok(()) => Ok(name),
        Err(rule) => Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("cannot name the iso after {}: {rule}", file.display()),
        )
        .with_hint("give it a name with --name NAME")
        .into()),
    }
}

/// The file's stem as a DNS label: lowercased, other characters than `a-z0-9-` replaced by
/// `-`, no `-` at either end, at most 63 characters. May be empty.
fn name_from_file(file: &Path) -> String {
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let label: String = stem
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    let label: String = label.trim_matches('-').chars().take(NAME_MAX_LEN).collect();
    label.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(file: &str) -> String {
        name_from_file(Path::new(file))
    }

    #[test]
    fn names_come_from_the_file_stem() {
        assert_eq!(
            derived("Debian-12.5.0_amd64-netinst.iso"),
            "debian-12-5-0-amd64-netinst"
        );
        assert_eq!(derived("/srv/isos/guest.iso"), "guest");
        assert_eq!(
            derived("alpine-virt-3.20.1-x86_64.ISO"),
            "alpine-virt-3-20-1-x86-64"
        );
        assert_eq!(
            derived("_Fedora Workstation 40_.iso"),
            "fedora-workstation-40"
        );
        assert_eq!(derived("noextension"), "noextension");
        assert_eq!(derived("café.iso"), "caf");
        assert_eq!(derived("___.iso"), "");
    }

    #[test]
    fn long_names_are_cut_without_a_trailing_dash() {
        let long = format!("{}_{}.iso", "a".repeat(62), "b".repeat(10));
        assert_eq!(derived(&long), "a".repeat(62));
        let longer = format!("{}.iso", "x".repeat(80));
        assert_eq!(derived(&longer).len(), NAME_MAX_LEN);
        assert!(validate_name("iso", &derived(&longer)).is_ok());
    }

    #[test]
    fn invalid_names_exit_6_with_a_hint_when_derived() {
        let err = iso_name(None, Path::new("/tmp/___.iso")).expect_err("empty");
        assert_eq!(err.exit_code(), 6);
        assert!(
            err.to_string()
                .starts_with("cannot name the iso after /tmp/___.iso: "),
            "{err}"
        );
        assert_eq!(err.hint(), Some("give it a name with --name NAME"));
        let err = iso_name(Some("Bad_Name".into()), Path::new("ok.iso")).expect_err("bad");
        assert_eq!((err.exit_code(), err.hint()), (6, None));
        let name = iso_name(Some("deb".into()), Path::new("Other.iso")).expect("valid");
        assert_eq!(name, "deb");
        let name = iso_name(None, Path::new("Debian-12.5.0_amd64-netinst.iso")).expect("valid");
        assert_eq!(name, "debian-12-5-0-amd64-netinst");
    }
}
