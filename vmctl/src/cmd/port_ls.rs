//! `vmctl port ls VM`: a VM's port forwards (`vm.port_list`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the forwards as a table or a JSON array of `PortForward`.
pub async fn run(ctx: &Ctx, vm: String) -> Result<(), CliError> {
    let ports = ctx.connect().await?.vm_port_list(vm).await?;
    ctx.out.object(&ports, |ports| output::vm_net::ports(ports))
}
