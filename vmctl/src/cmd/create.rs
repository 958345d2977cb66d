//! `vmctl create NAME --image BASE | --template T`: defines a stopped VM (`vm.create`): an
//! overlay on a base image, or a clone of a warm template (sent as `image: ""` and
//! `template`; its first start restores the template's saved moment). Optionally with an
//! ISO inserted (`--iso`), its own firmware (`--firmware`), a lifetime (`--ttl`,
//! `--on-expiry`, `--session`), labels (`--label`), NICs on lab networks (`--net`, in
//! order; `--no-user-net`) and cloud-init options (see [`super::create_seed`]). Options a
//! clone cannot have (its hardware and NICs are the template's) are still sent: vmd refuses
//! them with `invalid_argument`, in its own words.
//!
//! Names and sizes are checked here first so that mistakes exit 6 without a round trip;
//! `--memory` must be a whole number of MiB (`512M`, `2G`; a bare number means bytes);
//! `--ttl` is a duration (`2h`, `90m`, `1h30m`, or seconds).

use vm_proto::api::VmdApiClient;
use vm_proto::names::{parse_size, validate_name};
use vm_proto::types::{validate_description, ExpiryAction, Firmware, VmCreate, NICS_MAX};

use super::{create_seed, Ctx};
use crate::cli::{CreateArgs, VmNetArgs, VmSourceArgs};
use crate::error::CliError;
use crate::output;
use crate::values::parse_duration_secs;

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// Creates the VM and prints it (nothing with `-q`). A VM on a cloud-init image gets the
/// caller's SSH keys by default; a clone does not (its guest restores a moment after its
/// first boot, when cloud-init has already run).
pub async fn run(ctx: &Ctx, args: CreateArgs) -> Result<(), CliError> {
    let mut request = request(args)?;
    let client = ctx.connect().await?;
    let wants_keys = request.cloud_init.is_none() && request.template.is_none();
    if wants_keys && client.image_get(request.image.clone()).await?.cloud_init {
        request.cloud_init = create_seed::default_keys();
    }
    let vm = client.vm_create(request).await?;
    ctx.out.result(&vm, output::vm::details)
}

/// Validates the arguments and builds the `vm.create` parameters.
fn request(args: CreateArgs) -> Result<VmCreate, CliError> {
    validate_name("vm", &args.name).map_err(CliError::invalid)?;
    check_source(&args.source)?;
    if let Some(iso) = &args.iso {
        validate_name("iso", iso).map_err(CliError::invalid)?;
    }
    if let Some(text) = &args.description {
        validate_description(text).map_err(CliError::invalid)?;
    }
    check_networks(&args.net, args.ssh_port)?;
    Ok(VmCreate {
        name: args.name,
        image: args.source.image.unwrap_or_default(),
        template: args.source.template,
        cpus: args.cpus,
        memory_mib: args.memory.as_deref().map(memory_mib).transpose()?,
        disk_bytes: args.disk.as_deref().map(disk_bytes).transpose()?,
        ssh_port: args.ssh_port,
        iso: args.iso,
        firmware: args.firmware.map(Firmware::from),
        ttl_secs: args.ttl.as_deref().map(parse_duration_secs).transpose()?,
        on_expiry: args.on_expiry.map(ExpiryAction::from),
        session: args.session,
        description: args.description,
        labels: super::set::labels(&args.labels.labels)?,
        cloud_init: create_seed::request(&args.provision)?,
        networks: args.net.networks,
        no_user_net: args.net.no_user_net,
    })
}

/// Checks the names of `--image` and `--template` (clap lets exactly one through).
fn check_source(source: &VmSourceArgs) -> Result<(), CliError> {
    if let Some(image) = &source.image {
        validate_name("image", image).map_err(CliError::invalid)?;
    }
    if let Some(template) = &source.template {
        validate_name("template", template).map_err(CliError::invalid)?;
    }
    Ok(())
}

/// Checks `--net` (names, each once, at most [`NICS_MAX`]) and that `--ssh-port` has the
/// user-mode NIC it forwards through.
fn check_networks(net: &VmNetArgs, ssh_port: Option<u16>) -> Result<(), CliError> {
    if net.no_user_net && ssh_port.is_some() {
        return Err(CliError::invalid(
            "--ssh-port forwards through the user-mode NIC, which --no-user-net leaves out: \
             drop one of them (reach such a VM over a lab network)",
        ));
    }
    if net.networks.len() > NICS_MAX {
        return Err(CliError::invalid(format!(
            "{} --net options: a VM has at most {NICS_MAX} NICs on lab networks",
            net.networks.len()
        )));
    }
    for (i, name) in net.networks.iter().enumerate() {
        validate_name("network", name).map_err(CliError::invalid)?;
        if net.networks[..i].contains(name) {
            return Err(CliError::invalid(format!(
                "--net {name} is given twice: a VM has one NIC per network"
            )));
        }
    }
    Ok(())
}

/// `--disk` in bytes. Also `set`'s.
pub(super) fn disk_bytes(text: &str) -> Result<u64, CliError> {
    parse_size(text).map_err(CliError::invalid)
}

/// `--memory` in MiB; sizes that are not whole MiB are rejected. Also `image create`'s and
/// `set`'s.
pub(super) fn memory_mib(text: &str) -> Result<u64, CliError> {
    let bytes = parse_size(text).map_err(CliError::invalid)?;
    if bytes == 0 || bytes % MIB != 0 {
        return Err(CliError::invalid(format!(
            "invalid memory size {text:?}: {bytes} bytes is not a whole number of MiB; use e.g. 512M or 2G"
        )));
    }
    Ok(bytes / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(memory: Option<&str>, disk: Option<&str>) -> CreateArgs {
        CreateArgs {
            name: "web1".into(),
            source: VmSourceArgs {
                image: Some("debian-12".into()),
                template: None,
            },
            cpus: Some(2),
            memory: memory.map(String::from),
            disk: disk.map(String::from),
            ssh_port: None,
            net: Default::default(),
            iso: None,
            firmware: None,
            ttl: None,
            on_expiry: None,
            session: false,
            description: None,
            labels: Default::default(),
            provision: Default::default(),
        }
    }

    #[test]
    fn a_clone_names_its_template_and_no_image() {
        let req = request(args(None, None)).expect("valid");
        assert_eq!((req.image.as_str(), req.template), ("debian-12", None));
        let clone = CreateArgs {
            source: VmSourceArgs {
                image: None,
                template: Some("lab-base".into()),
            },
            cpus: None,
            ..args(None, None)
        };
        let req = request(clone).expect("valid");
        assert_eq!(req.image, "");
        assert_eq!(req.template.as_deref(), Some("lab-base"));
        assert_eq!(req.cpus, None);
        // Options a clone cannot have are still sent, for vmd to refuse in its words.
        let sized = CreateArgs {
            source: VmSourceArgs {
                image: None,
                template: Some("lab-base".into()),
            },
            ..args(Some("1G"), None)
        };
        let req = request(sized).expect("valid");
        assert_eq!((req.cpus, req.memory_mib), (Some(2), Some(1024)));
        let json = serde_json::to_value(&req).expect("json");
        assert_eq!(json["image"], "");
        assert_eq!(json["template"], "lab-base");
        let bad = CreateArgs {
            source: VmSourceArgs {
                image: None,
                template: Some("Lab_Base".into()),
            },
            ..args(None, None)
        };
        let err = request(bad).expect_err("template name");
        assert_eq!(err.exit_code(), 6);
        assert!(err.to_string().contains("template name"), "{err}");
    }

    #[test]
    fn lifetime_options_are_passed_on() {
        let with = CreateArgs {
            ttl: Some("1h30m".into()),
            on_expiry: Some(crate::cli::ExpiryArg::Stop),
            session: true,
            ..args(None, None)
        };
        let req = request(with).expect("valid");
        assert_eq!(req.ttl_secs, Some(5400));
        assert_eq!(
            (req.on_expiry, req.session),
            (Some(ExpiryAction::Stop), true)
        );
        let req = request(args(None, None)).expect("valid");
        assert_eq!(
            (req.ttl_secs, req.on_expiry, req.session),
            (None, None, false)
        );
        let bad = CreateArgs {
            ttl: Some("forever".into()),
            ..args(None, None)
        };
        assert_eq!(request(bad).expect_err("ttl").exit_code(), 6);
    }

    #[test]
    fn sizes_become_mib_and_bytes() {
        let req = request(args(Some("1G"), Some("20G"))).expect("valid");
        assert_eq!(req.memory_mib, Some(1024));
        assert_eq!(req.disk_bytes, Some(20 << 30));
        assert_eq!(req.cpus, Some(2));
        assert_eq!(
            request(args(Some("512MiB"), None))
                .expect("valid")
                .memory_mib,
            Some(512)
        );
        assert_eq!(request(args(None, None)).expect("valid").memory_mib, None);
    }

    #[test]
    fn iso_and_firmware_are_passed_on() {
        let with = CreateArgs {
            iso: Some("guest".into()),
            firmware: Some(crate::cli::FirmwareArg::Uefi),
            ..args(None, None)
        };
        let req = request(with).expect("valid");
        assert_eq!(req.iso.as_deref(), Some("guest"));
        assert_eq!(req.firmware, Some(Firmware::Uefi));
        let req = request(args(None, None)).expect("valid");
        assert_eq!((req.iso, req.firmware), (None, None));
        let bad = CreateArgs {
            iso: Some("Guest.iso".into()),
            ..args(None, None)
        };
        assert_eq!(request(bad).expect_err("iso name").exit_code(), 6);
    }

    #[test]
    fn networks_are_passed_on_in_order() {
        let net = |names: &[&str], no_user_net| VmNetArgs {
            networks: names.iter().map(|n| n.to_string()).collect(),
            no_user_net,
        };
        let with = CreateArgs {
            net: net(&["lab", "dmz"], true),
            ..args(None, None)
        };
        let req = request(with).expect("valid");
        assert_eq!(
            (req.networks, req.no_user_net),
            (vec!["lab".into(), "dmz".into()], true)
        );
        let req = request(args(None, None)).expect("valid");
        assert_eq!((req.networks.len(), req.no_user_net), (0, false));
        let both = CreateArgs {
            ssh_port: Some(2222),
            net: net(&[], true),
            ..args(None, None)
        };
        let err = request(both).expect_err("ssh port without user net");
        assert_eq!(err.exit_code(), 6);
        assert!(err.to_string().contains("--no-user-net"), "{err}");
        let nine: Vec<String> = (0..=NICS_MAX).map(|i| format!("n{i}")).collect();
        let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
        for bad in [
            net(&["lab", "lab"], false),
            net(&["Lab"], false),
            net(&nine, false),
        ] {
            let bad = CreateArgs {
                net: bad,
                ..args(None, None)
            };
            assert_eq!(request(bad).expect_err("networks").exit_code(), 6);
        }
    }

    #[test]
    fn partial_mib_and_bad_input_exit_6() {
        for memory in ["1000K", "512", "0", "lots"] {
            let err = request(args(Some(memory), None)).expect_err(memory);
            assert_eq!(err.exit_code(), 6, "{memory}");
        }
        let err = request(args(Some("1000K"), None)).expect_err("1000K");
        assert!(
            err.to_string().contains("not a whole number of MiB"),
            "{err}"
        );
        assert_eq!(
            request(args(None, Some("2X")))
                .expect_err("disk")
                .exit_code(),
            6
        );
        let bad_name = CreateArgs {
            name: "Web_1".into(),
            ..args(None, None)
        };
        assert_eq!(request(bad_name).expect_err("name").exit_code(), 6);
    }
}
