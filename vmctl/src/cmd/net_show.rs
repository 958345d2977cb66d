//! `vmctl net show NAME`: one network with its members and DHCP leases (`net.get`).

use vm_proto::api::VmdApiClient;

use super::Ctx;
use crate::error::CliError;
use crate::output;

/// Prints the network as key/value lines and tables, or JSON.
pub async fn run(ctx: &Ctx, name: String) -> Result<(), CliError> {
    let network = ctx.connect().await?.net_get(name).await?;
    ctx.out.object(&network, output::network::details)
}
