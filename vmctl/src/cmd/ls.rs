//! `vmctl ls`: every VM (`vm.list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the VMs as a table, names (`-q`) or a JSON array.
pub async fn run(ctx: &Ctx) -> Result<(), CliError> {
    let vms = ctx.connect().await?.vm_list().await?;
    ctx.out.list(&vms, |vm| &vm.name, output::vm::table)
}
