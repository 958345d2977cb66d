//! `vmctl net create NAME [--subnet CIDR] [--dhcp] [--nat | --isolated]`: creates a lab
//! network (`net.create`). The name and subnet are checked here first (exit 6 without a
//! round trip); vmd applies the same rules and also refuses overlaps and, for users, subnets
//! outside its pool.

use vm_proto::api::VmdApiClient;
use vm_proto::names::validate_name;
use vm_proto::types::{NetworkCreate, Subnet};

use super::Ctx;
use crate::cli::NetCreateArgs;
use crate::error::CliError;
use crate::output;

/// Creates the network and prints it (nothing with `-q`).
pub async fn run(ctx: &Ctx, args: NetCreateArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let network = ctx.connect().await?.net_create(request).await?;
    ctx.out.result(&network, output::network::details)
}

/// Validates the arguments and builds the `net.create` parameters.
fn request(args: NetCreateArgs) -> Result<NetworkCreate, CliError> {
    validate_name("network", &args.name).map_err(CliError::invalid)?;
    let subnet = args
        .subnet
        .as_deref()
        .map(|text| Subnet::parse(text.trim()).map(|s| s.to_string()))
        .transpose()
        .map_err(CliError::invalid)?;
    Ok(NetworkCreate {
        name: args.name,
        subnet,
        dhcp: args.dhcp,
        nat: args.nat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(subnet: Option<&str>) -> NetCreateArgs {
        NetCreateArgs {
            name: "lab".into(),
            subnet: subnet.map(String::from),
            dhcp: true,
            nat: false,
            isolated: false,
        }
    }

    #[test]
    fn options_are_passed_on() {
        let req = request(args(Some("10.213.4.0/24"))).expect("valid");
        assert_eq!(req.subnet.as_deref(), Some("10.213.4.0/24"));
        assert_eq!((req.name.as_str(), req.dhcp, req.nat), ("lab", true, false));
        let nat = NetCreateArgs {
            nat: true,
            ..args(None)
        };
        let req = request(nat).expect("valid");
        assert_eq!((req.subnet, req.nat), (None, true));
    }

    #[test]
    fn bad_subnets_and_names_exit_6() {
        for bad in ["10.213.4.7/24", "10.0.0.0/8", "10.0.0.0", "lab"] {
            let err = request(args(Some(bad))).expect_err(bad);
            assert_eq!(err.exit_code(), 6, "{bad}");
        }
        let err = request(args(Some("10.213.4.7/24"))).expect_err("host bits");
        assert!(
            err.to_string().contains("did you mean 10.213.4.0/24"),
            "{err}"
        );
        let bad_name = NetCreateArgs {
            name: "Lab_1".into(),
            ..args(None)
        };
        assert_eq!(request(bad_name).expect_err("name").exit_code(), 6);
    }
}
