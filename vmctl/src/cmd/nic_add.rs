//! `vmctl nic add VM --net NAME`: gives a stopped VM a new NIC on a network, last in order
//! with a fresh MAC (`vm.nic_add`).

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::NicChange;

use super::Ctx;
use crate::cli::NicArgs;
use crate::error::CliError;
use crate::output;

/// Adds the NIC and prints the VM's NICs (nothing with `-q`; JSON: the VM).
pub async fn run(ctx: &Ctx, args: NicArgs) -> Result<(), CliError> {
    let request = change(args)?;
    let vm = ctx.connect().await?.vm_nic_add(request).await?;
    ctx.out.result(&vm, output::vm_net::nics)
}

/// Checks both names and builds the parameters of `vm.nic_add`. Also `nic rm`'s.
pub(super) fn change(args: NicArgs) -> Result<NicChange, CliError> {
    validate_name("vm", &args.vm).map_err(CliError::invalid)?;
    validate_name("network", &args.network).map_err(CliError::invalid)?;
    Ok(NicChange {
        vm: args.vm,
        network: args.network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let ok = change(NicArgs {
            vm: "web1".into(),
            network: "lab".into(),
        })
        .expect("valid");
        assert_eq!((ok.vm.as_str(), ok.network.as_str()), ("web1", "lab"));
        let bad = change(NicArgs {
            vm: "web1".into(),
            network: "Lab".into(),
        })
        .expect_err("network name");
        assert_eq!(bad.exit_code(), 6);
        assert!(bad.to_string().contains("network name"), "{bad}");
    }
}
