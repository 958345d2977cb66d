//! `vmctl stop NAME [--force] [--timeout SECS]`: stops a VM (`vm.stop`).
//!
//! The daemon sends an ACPI power-down, waits up to the timeout (30 s by default), then ends
//! QEMU; `--force` ends it at once. The call returns once no process remains.

use vm_proto::api::VmdApiClient;
use vm_proto::types::VmStop;

use super::Ctx;
use crate::cli::StopArgs;
use crate::error::CliError;
use crate::output;

/// Stops the VM and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: StopArgs) -> Result<(), CliError> {
    let request = VmStop {
        name: args.name,
        force: args.force,
        timeout_secs: args.timeout,
    };
    let vm = ctx.connect().await?.vm_stop(request).await?;
    ctx.out.result(&vm, output::vm::details)
}
