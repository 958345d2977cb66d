//! `vmctl port add VM [ADDR:]HOSTPORT GUESTPORT [--udp]`: forwards a host port to a guest
//! port through the VM's user-mode NIC (`vm.port_add`): stored, and live while it runs.
//! Without ADDR vmd listens on 127.0.0.1.

use vm_proto::api::VmdApiClient;
use vm_proto::types::{PortAdd, Protocol};

use super::Ctx;
use crate::cli::PortAddArgs;
use crate::error::CliError;
use crate::output;
use crate::values::{parse_host_port, parse_port};

/// Adds the forward and prints the VM's forwards (nothing with `-q`; JSON: the VM).
pub async fn run(ctx: &Ctx, args: PortAddArgs) -> Result<(), CliError> {
    let request = request(args)?;
    let vm = ctx.connect().await?.vm_port_add(request).await?;
    ctx.out.result(&vm, output::vm_net::vm_ports)
}

/// Parses the ports and builds the `vm.port_add` parameters.
fn request(args: PortAddArgs) -> Result<PortAdd, CliError> {
    let (host_address, host_port) = parse_host_port(&args.host)?;
    Ok(PortAdd {
        vm: args.vm,
        protocol: protocol(args.udp),
        host_address,
        host_port,
        guest_port: parse_port("guest port", &args.guest_port)?,
    })
}

/// `--udp` as a [`Protocol`]. Also `port rm`'s.
pub(super) fn protocol(udp: bool) -> Protocol {
    if udp {
        Protocol::Udp
    } else {
        Protocol::Tcp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(host: &str, guest: &str, udp: bool) -> PortAddArgs {
        PortAddArgs {
            vm: "web".into(),
            host: host.into(),
            guest_port: guest.into(),
            udp,
        }
    }

    #[test]
    fn ports_and_protocol_are_passed_on() {
        let req = request(args("8080", "80", false)).expect("valid");
        assert_eq!(
            req,
            PortAdd {
                vm: "web".into(),
                protocol: Protocol::Tcp,
                host_address: None,
                host_port: 8080,
                guest_port: 80,
            }
        );
        let req = request(args("0.0.0.0:5353", "53", true)).expect("valid");
        assert_eq!(req.protocol, Protocol::Udp);
        assert_eq!(req.host_address.as_deref(), Some("0.0.0.0"));
        assert_eq!((req.host_port, req.guest_port), (5353, 53));
    }

    #[test]
    fn bad_ports_exit_6() {
        for (host, guest) in [
            ("8080", "0"),
            ("8080", "70000"),
            ("x:80", "80"),
            ("0", "80"),
        ] {
            let err = request(args(host, guest, false)).expect_err(host);
            assert_eq!(err.exit_code(), 6, "{host} {guest}");
        }
        let err = request(args("8080", "0", false)).expect_err("guest 0");
        assert!(err.to_string().contains("guest port"), "{err}");
    }
}
