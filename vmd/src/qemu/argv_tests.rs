//! Unit tests of [`super::QemuConfig::args`].

use super::*;
use crate::qemu::netargs::{NetArgs, TapNic};

fn typical() -> QemuConfig {
    QemuConfig {
        name: "web1".into(),
        cpus: 2,
        memory_mib: 1024,
        ram: GuestRam::Memfd,
        accel: Accel::Tcg,
        overlay: "/var/lib/vmd/overlays/web1.qcow2".into(),
        qmp_socket: "/run/vmd/vms/web1/qmp.sock".into(),
        console_socket: "/run/vmd/vms/web1/console.sock".into(),
        console_log: "/var/lib/vmd/logs/web1.console.log".into(),
        vnc_socket: "/run/vmd/vms/web1/vnc.sock".into(),
        net: NetArgs {
            user_net: true,
            ..NetArgs::default()
        },
        runas: None,
        sandbox: false,
        cdrom: None,
        cd_first: false,
        uefi_firmware: None,
        seed: None,
        agent_socket: "/run/vmd/vms/web1/agent.sock".into(),
    }
}

fn strings(config: &QemuConfig) -> Vec<String> {
    config
        .args()
        .into_iter()
        .map(|a| a.into_string().expect("utf-8"))
        .collect()
}

const TYPICAL: &[&str] = &[
    "-name",
    "guest=web1,debug-threads=on",
    "-nodefaults",
    "-no-user-config",
    "-msg",
    "timestamp=on",
    "-machine",
    "q35,memory-backend=vmd-ram",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "1024",
    "-object",
    "memory-backend-memfd,id=vmd-ram,size=1024M,share=on",
    "-blockdev",
    r#"{"driver":"qcow2","node-name":"disk0","discard":"unmap","detect-zeroes":"unmap","file":{"driver":"file","filename":"/var/lib/vmd/overlays/web1.qcow2","discard":"unmap"}}"#,
    "-device",
    "virtio-blk-pci,drive=disk0,bootindex=1",
    "-device",
    "ide-cd,id=cd0,bus=ide.1,bootindex=2",
    "-netdev",
    "user,id=net0",
    "-device",
    "virtio-net-pci,netdev=net0",
    "-device",
    "virtio-rng-pci",
    "-device",
    "pvpanic",
    "-fw_cfg",
    "name=opt/guest/hostname,string=web1",
    "-device",
    "VGA",
    "-display",
    "none",
    "-vnc",
    "unix:/run/vmd/vms/web1/vnc.sock",
    "-chardev",
    "socket,id=serial0,path=/run/vmd/vms/web1/console.sock,server=on,wait=off,\
     logfile=/var/lib/vmd/logs/web1.console.log,logappend=on",
    "-serial",
    "chardev:serial0",
    "-chardev",
    "socket,id=agent0,path=/run/vmd/vms/web1/agent.sock,server=on,wait=off",
    "-device",
    "virtio-serial-pci,id=vser0",
    "-device",
    "virtserialport,bus=vser0.0,chardev=agent0,name=org.qemu.guest_agent.0",
    "-qmp",
    "unix:/run/vmd/vms/web1/qmp.sock,server=on,wait=off",
];

#[test]
fn install_vm_boots_its_iso_first_with_uefi() {
    let config = QemuConfig {
        cdrom: Some("/var/lib/vmd/isos/deb.iso".into()),
        cd_first: true,
        uefi_firmware: Some("/usr/share/ovmf/OVMF.fd".into()),
        ..typical()
    };
    let argv = strings(&config).join(" ");
    assert!(
        argv.contains("share=on -bios /usr/share/ovmf/OVMF.fd -blockdev"),
        "{argv}"
    );
    assert!(
        argv.contains("virtio-blk-pci,drive=disk0,bootindex=2"),
        "{argv}"
    );
    let cd = r#"-blockdev {"driver":"raw","node-name":"cdmedia","read-only":true,"file":{"driver":"file","filename":"/var/lib/vmd/isos/deb.iso","read-only":true}} -device ide-cd,id=cd0,bus=ide.1,bootindex=1,drive=cdmedia"#;
    assert!(argv.contains(cd), "{argv}");
}

#[test]
fn typical_argv() {
    assert_eq!(strings(&typical()), TYPICAL);
}

#[test]
fn lab_nics_start_paused_after_the_user_nic() {
    let mut config = typical();
    config.net.taps.push(TapNic {
        tap: "vmd1n0".into(),
        mac: "02:76:6d:00:00:01".into(),
    });
    let argv = strings(&config);
    assert!(argv.iter().any(|a| a == "-S"));
    let at = argv.iter().position(|a| a == "-netdev").expect("netdev");
    assert_eq!(argv[at + 1], "user,id=net0");
    assert_eq!(argv[at + 4], "-netdev");
    assert!(argv[at + 5].starts_with("tap,id=lan0,ifname=vmd1n0"));
    assert_eq!(argv.len(), TYPICAL.len() + 5);
}

#[test]
fn kvm_uses_the_host_cpu() {
    let config = QemuConfig {
        accel: Accel::Kvm,
        ..typical()
    };
    let mut expected: Vec<String> = TYPICAL.iter().map(|s| s.to_string()).collect();
    expected[9] = "kvm".into();
    expected[11] = "host".into();
    assert_eq!(strings(&config), expected);
}

#[test]
fn sandbox_without_runas_denies_privilege_changes() {
    let config = QemuConfig {
        sandbox: true,
        ..typical()
    };
    let argv = strings(&config);
    assert_eq!(&argv[..TYPICAL.len()], TYPICAL);
    assert_eq!(
        &argv[TYPICAL.len()..],
        [
            "-sandbox",
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
        ]
    );
}

#[test]
fn runas_keeps_setuid_allowed_in_the_sandbox() {
    let config = QemuConfig {
        sandbox: true,
        runas: Some("nobody".into()),
        ..typical()
    };
    let argv = strings(&config);
    assert_eq!(&argv[..TYPICAL.len()], TYPICAL);
    assert_eq!(
        &argv[TYPICAL.len()..],
        [
            "-sandbox",
            "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
            "-runas",
            "nobody"
        ]
    );
}

#[test]
fn runas_without_sandbox() {
    let config = QemuConfig {
        runas: Some("vmd-qemu".into()),
        ..typical()
    };
    let argv = strings(&config);
    assert_eq!(&argv[TYPICAL.len()..], ["-runas", "vmd-qemu"]);
}

#[test]
fn commas_in_paths_are_doubled() {
    let config = QemuConfig {
        qmp_socket: "/tmp/a,b/qmp.sock".into(),
        vnc_socket: "/tmp/a,b/vnc.sock".into(),
        ..typical()
    };
    let argv = strings(&config);
    assert!(argv.contains(&"unix:/tmp/a,,b/qmp.sock,server=on,wait=off".to_string()));
    assert!(argv.contains(&"unix:/tmp/a,,b/vnc.sock".to_string()));
}

#[test]
fn never_keymap_nor_daemonize() {
    let config = QemuConfig {
        sandbox: true,
        runas: Some("nobody".into()),
        ..typical()
    };
    let argv = strings(&config);
    assert!(!argv.iter().any(|a| a == "-k" || a == "-daemonize"));
}

#[test]
fn a_restoring_clone_maps_the_template_ram_privately_and_waits_for_its_state() {
    let config = QemuConfig {
        ram: GuestRam::Restore("/var/lib/vmd/templates/t,1/ram".into()),
        ..typical()
    };
    let argv = strings(&config).join(" ");
    assert!(
        argv.contains("-machine q35,memory-backend=vmd-ram "),
        "{argv}"
    );
    assert!(
        argv.contains("-object memory-backend-file,id=vmd-ram,size=1024M,share=off,mem-path=/var/lib/vmd/templates/t,,1/ram -incoming defer "),
        "{argv}"
    );
    assert!(!argv.contains("memfd"), "{argv}");
}
