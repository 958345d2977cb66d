//! `vmctl extend NAME DURATION`: moves a VM's expiry later, or gives it one from now
//! (`vm.extend`).

use vm_proto::api::VmdApiClient;
use vm_proto::types::VmExtend;

use super::Ctx;
use crate::cli::ExtendArgs;
use crate::error::CliError;
use crate::output;
use crate::values::parse_duration_secs;

/// Extends the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: ExtendArgs) -> Result<(), CliError> {
    let request = VmExtend {
        by_secs: parse_duration_secs(&args.duration)?,
        name: args.name,
    };
    let vm = ctx.connect().await?.vm_extend(request).await?;
    ctx.out.result(&vm, output::vm::details)
}
