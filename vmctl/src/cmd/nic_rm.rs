//! `vmctl nic rm VM --net NAME`: removes a stopped VM's NIC on a network (`vm.nic_remove`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::cli::NicArgs;
use crate::error::CliError;
use crate::output;

/// Removes the NIC and prints the VM's NICs left (nothing with `-q`; JSON: the VM).
pub async fn run(ctx: &Ctx, args: NicArgs) -> Result<(), CliError> {
    let request = super::nic_add::change(args)?;
    let vm = ctx.connect().await?.vm_nic_remove(request).await?;
    ctx.out.result(&vm, output::vm_net::nics)
}
