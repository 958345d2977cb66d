//! `vmctl port rm VM HOSTPORT [--udp]`: removes a port forward (`vm.port_remove`), live while
//! the VM runs.

use vm_proto::api::VmdApiClient;
use vm_proto::types::PortRemove;

use super::Ctx;
use crate::cli::PortRmArgs;
use crate::error::CliError;
use crate::output;
use crate::values::parse_port;

/// Removes the forward and prints the VM's forwards left (nothing with `-q`; JSON: the VM).
pub async fn run(ctx: &Ctx, args: PortRmArgs) -> Result<(), CliError> {
    let request = PortRemove {
        protocol: super::port_add::protocol(args.udp),
        host_port: parse_port("host port", &args.host_port)?,
        vm: args.vm,
    };
    let vm = ctx.connect().await?.vm_port_remove(request).await?;
    ctx.out.result(&vm, output::vm_net::vm_ports)
}
