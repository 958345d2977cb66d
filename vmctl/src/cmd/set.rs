//! `vmctl set NAME [--cpus N] [--memory SIZE] [--disk SIZE] [--description TEXT]
//! [--label K=V …] [--unlabel K …]`: changes a VM after creation (`vm.set`) and prints it.
//!
//! cpus, memory and disk change only while the VM is stopped, and a disk only grows; the
//! description and labels change any time (`--description ""` clears it). Sizes are parsed as by
//! `vmctl create`, and checked here first so that mistakes exit 6 without a round trip.

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::{parse_label, validate_description, Labels, VmSet};

use super::create::{disk_bytes, memory_mib};
use super::Ctx;
use crate::cli::SetArgs;
use crate::error::CliError;
use crate::output;

/// Changes the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: SetArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let vm = ctx.connect().await?.vm_set(request).await?;
    ctx.out.result(&vm, output::vm::details)
}

/// Validates the arguments and builds the `vm.set` parameters.
fn request(args: SetArgs) -> Result<VmSet, CliError> {
    validate_name("vm", &args.name).map_err(CliError::invalid)?;
    if let Some(text) = &args.description {
        validate_description(text).map_err(CliError::invalid)?;
    }
    Ok(VmSet {
        name: args.name,
        cpus: args.cpus,
        memory_mib: args.memory.as_deref().map(memory_mib).transpose()?,
        disk_bytes: args.disk.as_deref().map(disk_bytes).transpose()?,
        description: args.description,
        labels: labels(&args.labels)?,
        remove_labels: args.unlabels,
    })
}

/// `--label KEY=VALUE` options as a label set, each checked. Also `create`'s.
pub(super) fn labels(texts: &[String]) -> Result<Labels, CliError> {
    texts
        .iter()
        .map(|t| parse_label(t).map_err(CliError::invalid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<VmSet, CliError> {
        let cli = Cli::try_parse_from(argv).expect("parses");
        match cli.command {
            Command::Set(args) => request(args),
            other => panic!("not set: {other:?}"),
        }
    }

    #[test]
    fn sizes_are_parsed_like_create() {
        let req = parse(&["vmctl", "set", "web1", "--memory", "2G", "--disk", "20G"]);
        let req = req.expect("valid");
        assert_eq!(
            (req.memory_mib, req.disk_bytes),
            (Some(2048), Some(20 << 30))
        );
        assert_eq!((req.cpus, req.description), (None, None));
        let err = parse(&["vmctl", "set", "web1", "--memory", "1000K"]).expect_err("partial MiB");
        assert_eq!(err.exit_code(), 6);
    }

    #[test]
    fn description_may_be_cleared_but_not_multiline() {
        let req = parse(&["vmctl", "set", "web1", "--description", ""]).expect("clear");
        assert_eq!(req.description.as_deref(), Some(""));
        let err = parse(&["vmctl", "set", "web1", "--description", "a\nb"]).expect_err("newline");
        assert_eq!(err.exit_code(), 6);
    }

    #[test]
    fn at_least_one_change_is_required() {
        let err = Cli::try_parse_from(["vmctl", "set", "web1"]).expect_err("nothing to set");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let req = parse(&["vmctl", "set", "web1", "--cpus", "4"]).expect("cpus");
        assert_eq!(req.cpus, Some(4));
    }
}
