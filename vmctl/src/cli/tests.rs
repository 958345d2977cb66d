//! Parsing tests of the command line: globals, aliases, and the options of each verb.

use super::*;
use clap::CommandFactory;
use vm_proto::types::VmState;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("vmctl").chain(args.iter().copied())).expect("parses")
}

#[test]
fn definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn globals_work_after_the_subcommand() {
    let cli = parse(&["ls", "--output", "json", "-q", "--socket", "/tmp/s.sock"]);
    assert_eq!(cli.output, Format::Json);
    assert!(cli.quiet);
    assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
    let cli = parse(&["image", "show", "deb", "--output=json"]);
    assert_eq!(cli.output, Format::Json);
    assert!(!parse(&["status"]).quiet);
}

/// The only test that touches `$VMD_TOKEN`, so no other test races with it.
#[test]
fn token_comes_from_the_flag_then_the_environment() {
    std::env::set_var("VMD_TOKEN", "from-env");
    assert_eq!(parse(&["ls"]).token.as_deref(), Some("from-env"));
    let cli = parse(&["ls", "--token", "from-flag"]);
    assert_eq!(cli.token.as_deref(), Some("from-flag"));
    let help = Cli::command().render_long_help().to_string();
    assert!(
        help.contains("--token") && !help.contains("from-env"),
        "{help}"
    );
    std::env::remove_var("VMD_TOKEN");
    assert_eq!(
        parse(&["--token", "t", "whoami"]).token.as_deref(),
        Some("t")
    );
    assert_eq!(parse(&["whoami"]).token, None);
}

#[test]
fn ls_create_and_publish_take_the_account_options() {
    let Command::Ls(args) = parse(&["ls", "--user", "ann"]).command else {
        panic!("not ls")
    };
    assert_eq!((args.all, args.user.as_deref()), (false, Some("ann")));
    assert!(matches!(parse(&["ls", "--all"]).command, Command::Ls(a) if a.all));
    let cli = parse(&[
        "create",
        "t1",
        "--image",
        "b",
        "--ttl",
        "2h",
        "--on-expiry",
        "wipe",
        "--session",
    ]);
    let Command::Create(args) = cli.command else {
        panic!("not create")
    };
    assert_eq!(args.ttl.as_deref(), Some("2h"));
    assert_eq!(
        args.on_expiry.map(ExpiryAction::from),
        Some(ExpiryAction::Wipe)
    );
    assert!(args.session);
    let cli = parse(&["image", "publish", "v", "b", "--private"]);
    assert!(matches!(cli.command,
        Command::Image(ImageCommand::Publish(p)) if p.private && !p.public));
}

#[test]
fn aliases_parse() {
    assert!(matches!(parse(&["list"]).command, Command::Ls(_)));
    assert!(matches!(parse(&["remove", "a"]).command, Command::Rm(_)));
    assert!(matches!(
        parse(&["image", "list"]).command,
        Command::Image(ImageCommand::Ls)
    ));
    let cli = parse(&["image", "remove", "deb"]);
    assert!(matches!(cli.command, Command::Image(ImageCommand::Rm(n)) if n.names == ["deb"]));
}

#[test]
fn rm_takes_several_names_in_order() {
    let cli = parse(&["rm", "b", "a"]);
    assert!(matches!(cli.command, Command::Rm(n) if n.names == ["b", "a"]));
    let cli = parse(&["image", "rm", "x", "y", "z"]);
    assert!(
        matches!(cli.command, Command::Image(ImageCommand::Rm(n)) if n.names == ["x", "y", "z"])
    );
}

#[test]
fn runtime_verbs_parse() {
    let cli = parse(&["stop", "web1", "--timeout", "5"]);
    let Command::Stop(args) = cli.command else {
        panic!("not stop")
    };
    assert_eq!(
        (args.name.as_str(), args.force, args.timeout),
        ("web1", false, Some(5))
    );
    assert!(matches!(parse(&["stop", "a", "--force"]).command, Command::Stop(s) if s.force));
    for verb in ["start", "reboot", "pause", "resume", "vnc"] {
        let _ = parse(&[verb, "web1"]);
    }
    let Command::Logs(args) = parse(&["logs", "web1", "-f", "--tail", "4K"]).command else {
        panic!("not logs")
    };
    assert!(args.follow);
    assert_eq!(args.tail.as_deref(), Some("4K"));
    let Command::Events(args) = parse(&["events", "--since", "7", "-f"]).command else {
        panic!("not events")
    };
    assert_eq!((args.since, args.follow), (Some(7), true));
    let Command::Console(args) = parse(&["console", "web1"]).command else {
        panic!("not console")
    };
    assert_eq!(args.linger, 2);
}

#[test]
fn wait_takes_every_state_name() {
    for state in VmState::ALL {
        let cli = parse(&["wait", "web1", "--for", state.as_str(), "--timeout", "3"]);
        let Command::Wait(args) = cli.command else {
            panic!("not wait")
        };
        assert_eq!(
            (args.target, args.timeout),
            (WaitFor::State(state), Some(3))
        );
    }
}

#[test]
fn wait_takes_readiness_targets() {
    let targets = [
        ("ssh", WaitFor::Ssh),
        ("agent", WaitFor::Agent),
        ("log:login: $", WaitFor::Log("login: $".into())),
    ];
    for (value, expected) in targets {
        let Command::Wait(args) = parse(&["wait", "web1", "--for", value]).command else {
            panic!("not wait")
        };
        assert_eq!(args.target, expected);
    }
}

#[test]
fn ssh_takes_user_key_and_command() {
    let cli = parse(&[
        "ssh", "web1", "-i", "k", "--user", "lab", "--", "uname", "-a",
    ]);
    let Command::Ssh(args) = cli.command else {
        panic!("not ssh")
    };
    assert_eq!(args.identity.as_deref(), Some(std::path::Path::new("k")));
    assert_eq!(
        (args.user.as_deref(), args.command),
        (Some("lab"), vec!["uname".to_string(), "-a".into()])
    );
}

#[test]
fn create_and_import_take_their_options() {
    let cli = parse(&[
        "create",
        "web1",
        "--image",
        "deb",
        "--cpus",
        "2",
        "--memory",
        "1G",
        "--ssh-port",
        "2222",
    ]);
    let Command::Create(args) = cli.command else {
        panic!("not create")
    };
    assert_eq!((args.name.as_str(), args.cpus), ("web1", Some(2)));
    assert_eq!(args.memory.as_deref(), Some("1G"));
    assert_eq!(args.ssh_port, Some(2222));
    let cli = parse(&["image", "import", "/tmp/d.qcow2", "--name", "deb"]);
    let Command::Image(ImageCommand::Import(args)) = cli.command else {
        panic!("not import")
    };
    assert_eq!(args.file, PathBuf::from("/tmp/d.qcow2"));
}

#[test]
fn iso_verbs_parse() {
    let cli = parse(&["iso", "upload", "/tmp/Debian.iso"]);
    let Command::Iso(IsoCommand::Upload(args)) = cli.command else {
        panic!("not iso upload")
    };
    assert_eq!(
        (args.file, args.name),
        (PathBuf::from("/tmp/Debian.iso"), None)
    );
    let cli = parse(&["iso", "upload", "d.iso", "--name", "deb"]);
    assert!(matches!(cli.command,
        Command::Iso(IsoCommand::Upload(a)) if a.name.as_deref() == Some("deb")));
    assert!(matches!(
        parse(&["iso", "list"]).command,
        Command::Iso(IsoCommand::Ls)
    ));
    assert!(matches!(
        parse(&["iso", "ls", "-q"]).command,
        Command::Iso(IsoCommand::Ls)
    ));
    let cli = parse(&["iso", "remove", "a", "b"]);
    assert!(matches!(cli.command, Command::Iso(IsoCommand::Rm(n)) if n.names == ["a", "b"]));
    let cli = parse(&["iso", "show", "deb"]);
    assert!(matches!(cli.command, Command::Iso(IsoCommand::Show(n)) if n.name == "deb"));
    let Command::Iso(IsoCommand::Attach(args)) = parse(&["iso", "attach", "web1", "deb"]).command
    else {
        panic!("not iso attach")
    };
    assert_eq!((args.vm.as_str(), args.iso.as_str()), ("web1", "deb"));
    let cli = parse(&["iso", "detach", "web1"]);
    assert!(matches!(cli.command, Command::Iso(IsoCommand::Detach(a)) if a.vm == "web1"));
}

#[test]
fn image_install_verbs_parse() {
    let cli = parse(&[
        "image",
        "create",
        "lab",
        "--size",
        "1G",
        "--iso",
        "guest",
        "--firmware",
        "uefi",
        "--cpus",
        "2",
        "--memory",
        "1G",
    ]);
    let Command::Image(ImageCommand::Create(args)) = cli.command else {
        panic!("not image create")
    };
    assert_eq!((args.name.as_str(), args.size.as_str()), ("lab", "1G"));
    assert_eq!(args.iso, "guest");
    assert_eq!(args.firmware.map(Firmware::from), Some(Firmware::Uefi));
    assert_eq!((args.cpus, args.memory.as_deref()), (Some(2), Some("1G")));
    let cli = parse(&["image", "create", "lab", "--size", "1G", "--iso", "guest"]);
    assert!(matches!(cli.command, Command::Image(ImageCommand::Create(a)) if a.firmware.is_none()));
    let cli = parse(&["image", "seal", "lab"]);
    assert!(matches!(cli.command, Command::Image(ImageCommand::Seal(n)) if n.name == "lab"));
    let Command::Image(ImageCommand::Publish(args)) =
        parse(&["image", "publish", "web1", "web-base"]).command
    else {
        panic!("not image publish")
    };
    assert_eq!((args.vm.as_str(), args.name.as_str()), ("web1", "web-base"));
}

#[test]
fn create_takes_iso_and_firmware() {
    let cli = parse(&[
        "create",
        "u1",
        "--image",
        "lab",
        "--iso",
        "guest",
        "--firmware",
        "bios",
    ]);
    let Command::Create(args) = cli.command else {
        panic!("not create")
    };
    assert_eq!(args.iso.as_deref(), Some("guest"));
    assert_eq!(args.firmware.map(Firmware::from), Some(Firmware::Bios));
    let Command::Create(args) = parse(&["create", "u1", "--image", "lab"]).command else {
        panic!("not create")
    };
    assert_eq!((args.iso, args.firmware), (None, None));
}

#[test]
fn net_verbs_parse() {
    let cli = parse(&[
        "net",
        "create",
        "lab",
        "--subnet",
        "10.213.4.0/24",
        "--dhcp",
        "--nat",
    ]);
    let Command::Net(NetCommand::Create(args)) = cli.command else {
        panic!("not net create")
    };
    assert_eq!(args.name, "lab");
    assert_eq!(args.subnet.as_deref(), Some("10.213.4.0/24"));
    assert_eq!((args.dhcp, args.nat, args.isolated), (true, true, false));
    let Command::Net(NetCommand::Create(args)) = parse(&["net", "create", "x"]).command else {
        panic!("not net create")
    };
    assert_eq!((args.subnet, args.dhcp, args.nat), (None, false, false));
    let cli = parse(&["net", "create", "x", "--isolated"]);
    assert!(matches!(cli.command, Command::Net(NetCommand::Create(a)) if a.isolated && !a.nat));
    for ls in ["ls", "list"] {
        assert!(matches!(
            parse(&["net", ls]).command,
            Command::Net(NetCommand::Ls)
        ));
    }
    let cli = parse(&["net", "show", "lab"]);
    assert!(matches!(cli.command, Command::Net(NetCommand::Show(n)) if n.name == "lab"));
    let cli = parse(&["net", "remove", "b", "a"]);
    assert!(matches!(cli.command, Command::Net(NetCommand::Rm(n)) if n.names == ["b", "a"]));
}

#[test]
fn nic_and_port_verbs_parse() {
    let Command::Nic(NicCommand::Add(args)) =
        parse(&["nic", "add", "web1", "--net", "lab"]).command
    else {
        panic!("not nic add")
    };
    assert_eq!((args.vm.as_str(), args.network.as_str()), ("web1", "lab"));
    let cli = parse(&["nic", "rm", "web1", "--net", "dmz"]);
    assert!(matches!(cli.command, Command::Nic(NicCommand::Rm(a)) if a.network == "dmz"));
    let cli = parse(&["port", "add", "web", "127.0.0.1:8080", "80"]);
    let Command::Port(PortCommand::Add(args)) = cli.command else {
        panic!("not port add")
    };
    assert_eq!(
        (
            args.vm.as_str(),
            args.host.as_str(),
            args.guest_port.as_str(),
            args.udp
        ),
        ("web", "127.0.0.1:8080", "80", false)
    );
    let cli = parse(&["port", "add", "web", "5353", "53", "--udp"]);
    assert!(matches!(cli.command, Command::Port(PortCommand::Add(a)) if a.udp));
    let cli = parse(&["port", "list", "web"]);
    assert!(matches!(cli.command, Command::Port(PortCommand::Ls(a)) if a.vm == "web"));
    let Command::Port(PortCommand::Rm(args)) =
        parse(&["port", "rm", "web", "8080", "--udp"]).command
    else {
        panic!("not port rm")
    };
    assert_eq!(
        (args.vm.as_str(), args.host_port.as_str(), args.udp),
        ("web", "8080", true)
    );
}

#[test]
fn create_takes_networks_in_order() {
    let cli = parse(&[
        "create",
        "v",
        "--image",
        "b",
        "--net",
        "lab",
        "--ssh-port",
        "2222",
        "--net",
        "dmz",
    ]);
    let Command::Create(args) = cli.command else {
        panic!("not create")
    };
    assert_eq!(args.net.networks, ["lab", "dmz"]);
    assert_eq!((args.net.no_user_net, args.ssh_port), (false, Some(2222)));
    let Command::Create(args) = parse(&["create", "v", "--image", "b", "--no-user-net"]).command
    else {
        panic!("not create")
    };
    assert!(args.net.no_user_net && args.net.networks.is_empty());
}

#[test]
fn template_verbs_parse() {
    let cli = parse(&["template", "create", "lab-base", "--from", "web1"]);
    let Command::Template(TemplateCommand::Create(args)) = cli.command else {
        panic!("not template create")
    };
    assert_eq!(
        (args.name.as_str(), args.from.as_str()),
        ("lab-base", "web1")
    );
    for ls in ["ls", "list"] {
        let cli = parse(&["template", ls]);
        assert!(matches!(
            cli.command,
            Command::Template(TemplateCommand::Ls)
        ));
    }
    let cli = parse(&["template", "show", "lab-base"]);
    assert!(
        matches!(cli.command, Command::Template(TemplateCommand::Show(t)) if t.name == "lab-base")
    );
    let cli = parse(&["template", "remove", "b", "a"]);
    assert!(
        matches!(cli.command, Command::Template(TemplateCommand::Rm(t)) if t.names == ["b", "a"])
    );
}

#[test]
fn create_needs_exactly_one_of_image_and_template() {
    let Command::Create(args) = parse(&["create", "c1", "--template", "lab-base"]).command else {
        panic!("not create")
    };
    assert_eq!(args.source.image, None);
    assert_eq!(args.source.template.as_deref(), Some("lab-base"));
    let Command::Create(args) = parse(&["create", "c1", "--image", "b", "--cpus", "2"]).command
    else {
        panic!("not create")
    };
    assert_eq!(
        (args.source.image.as_deref(), args.source.template),
        (Some("b"), None)
    );
    let parse_err = |args: &[&str]| {
        let argv = std::iter::once("vmctl").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect_err("usage error")
    };
    let missing = parse_err(&["create", "c1", "--cpus", "2"]);
    assert_eq!(
        missing.kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    let text = missing.to_string();
    assert!(
        text.contains("--image") && text.contains("--template"),
        "{text}"
    );
    let both = parse_err(&["create", "c1", "--image", "b", "--template", "t"]);
    assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
}

#[test]
fn usage_errors_are_rejected() {
    let bad = [
        &["create", "web1"][..],
        &["image", "import", "f"],
        &["ls", "--output", "xml"],
        &["rm"],
        &["image", "rm"],
        &["wait", "web1"],
        &["wait", "web1", "--for", "asleep"],
        &["wait", "web1", "--for", "log:"],
        &["ssh"],
        &["stop", "web1", "--force", "--timeout", "3"],
        &["events", "--since", "-1"],
        &["iso", "upload"],
        &["iso", "rm"],
        &["iso", "attach", "web1"],
        &["iso", "detach"],
        &["image", "create", "lab", "--iso", "guest"],
        &["image", "create", "lab", "--size", "1G"],
        &[
            "image",
            "create",
            "lab",
            "--size",
            "1G",
            "--iso",
            "g",
            "--firmware",
            "efi",
        ],
        &["image", "publish", "web1"],
        &["image", "seal"],
        &["create", "u1", "--image", "lab", "--firmware", "UEFI"],
        &["create", "u1", "--image", "lab", "--net"],
        &["net", "create"],
        &["net", "create", "lab", "--nat", "--isolated"],
        &["net", "show"],
        &["net", "rm"],
        &["nic", "add", "web1"],
        &["nic", "rm", "web1", "lab"],
        &["port", "add", "web1", "8080"],
        &["port", "add", "web1", "8080", "80", "--tcp"],
        &["port", "ls"],
        &["port", "rm", "web1"],
        &["template", "create", "t"],
        &["template", "create", "--from", "web1"],
        &["template", "show"],
        &["template", "rm"],
        &["create", "c1", "--template"],
        &["create", "c1", "--image", "b", "--template", "t"],
    ];
    for args in bad {
        let err = Cli::try_parse_from(std::iter::once("vmctl").chain(args.iter().copied()));
        assert_eq!(err.expect_err("usage error").exit_code(), 2, "{args:?}");
    }
}
