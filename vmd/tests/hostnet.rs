//! The host side of lab networks against the real kernel, `nft` and `dnsmasq`, inside a
//! network namespace of the test's own: the host's links, rules and sysctls are never touched.
//! Needs root (the tests run as root).
//!
//! The test runs on a thread that entered a namespace of its own (`testkit::netns`), with a
//! current-thread tokio runtime on it: netlink sockets, `/proc/sys/net` and the children
//! (`nft`, `dnsmasq`, `ip`) all follow the thread's namespace. "Guests" are further
//! namespaces joined by veth pairs; a tap made with `ip tuntap` stands for QEMU's.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testkit::netns::NetNs;
use vm_proto::types::Subnet;
use vmd::hostnet::{tap_name, HostNet, NetSpec};
use vmd::qemu::process::{is_same_process, start_time};

/// How long a DHCP client may take.
const DHCP_DEADLINE: Duration = Duration::from_secs(20);

/// Runs a command in the calling thread's namespace; its output whatever the status.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs and requires success; stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A "guest": a namespace of its own whose `eth0` (MAC `mac`) is a veth pair with `host_end`
/// in the calling thread's namespace (down, for [`HostNet::attach_tap`]).
fn peer(host_end: &str, mac: &str) -> NetNs {
    let ns = NetNs::new();
    ok(
        "ip",
        &[
            "link",
            "add",
            host_end,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "address",
            mac,
            "netns",
            ns.name(),
        ],
    );
    ns.ip_ok(&["link", "set", "eth0", "up"]);
    ns
}

/// Runs `argv` inside `ns` and requires success; stdout.
fn exec_ok(ns: &NetNs, argv: &[&str]) -> String {
    let out = ns.exec(argv);
    assert!(out.status.success(), "{argv:?} in {}: {out:?}", ns.name());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pings(ns: &NetNs, addr: &str) -> bool {
    let ping = ["busybox", "ping", "-c", "1", "-W", "2", addr];
    ns.exec(&ping).status.success()
}

fn spec(id: i64, subnet: &str, dhcp: bool, nat: bool) -> NetSpec {
    NetSpec {
        id,
        name: format!("net{id}"),
        subnet: Subnet::parse(subnet).expect("subnet"),
        dhcp,
        nat,
    }
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/{path}"))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

fn link_line(name: &str) -> String {
    ok("ip", &["-o", "link", "show", "dev", name])
}

/// Our dnsmasq's pid and start time, from its pid file.
fn dnsmasq_of(dir: &Path, id: i64) -> (u32, u64) {
    let text = std::fs::read_to_string(dir.join(format!("dnsmasq-{id}.pid"))).expect("pid file");
    let pid: u32 = text.trim().parse().expect("pid");
    (pid, start_time(pid).expect("dnsmasq runs"))
}

/// Runs a DHCP client for `mac` on `peer` and waits until `net`'s lease file has it.
async fn lease_for(host: &HostNet, net: &NetSpec, peer: &NetNs, mac: &str) -> Ipv4Addr {
    let udhcpc = [
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-f",
        "-t",
        "10",
        "-T",
        "1",
        "-s",
        "/bin/true",
        "-x",
        "hostname:client",
    ];
    exec_ok(peer, &udhcpc);
    let until = Instant::now() + DHCP_DEADLINE;
    loop {
        if let Some(lease) = host.leases(net).into_iter().find(|l| l.mac == mac) {
            assert_eq!(lease.hostname.as_deref(), Some("client"));
            assert!(net.subnet.contains(lease.ip), "{lease:?}");
            return lease.ip;
        }
        assert!(
            Instant::now() < until,
            "no lease for {mac}: {:?}",
            host.leases(net)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn networks_come_up_isolate_serve_dhcp_nat_and_go_away() {
    // The test's "host": everything below runs on a thread inside it, and its drop kills
    // whatever still runs there (dnsmasq) whatever happened.
    let host_ns = NetNs::new();
    host_ns.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(scenario());
    });
}

async fn scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net_dir = dir.path().join("net");
    let host = HostNet::new(net_dir.clone());
    host.check_capable(true)
        .expect("the tests run as root with nft and dnsmasq");
    let iso = spec(1, "10.77.1.0/24", true, false);
    let nat = spec(2, "10.77.2.0/24", false, true);
    let all = [iso.clone(), nat.clone()];

    bring_up(&host, &net_dir, &iso, &nat, &all).await;
    host_subnets_skip_vmd_bridges(&host).await;
    dnsmasq_is_adopted_and_restarted(&net_dir, &iso).await;
    traffic(&host, &iso, &nat).await;
    tap_joins_the_bridge(&host, &iso).await;
    leftovers_are_found_and_removed(&host, &net_dir, &all).await;
    tear_down(&host, &net_dir, &iso, &nat).await;
}

async fn bring_up(host: &HostNet, net_dir: &Path, iso: &NetSpec, nat: &NetSpec, all: &[NetSpec]) {
    for _ in 0..2 {
        host.ensure(iso, all).await.expect("ensure isolated");
        host.ensure(nat, all).await.expect("ensure nat");
    }
    let br = link_line("vmdbr1");
    assert!(
        br.contains(",UP") && br.contains("02:76:6d:00:00:01"),
        "{br}"
    );
    let addrs = ok("ip", &["-o", "-4", "addr", "show", "dev", "vmdbr1"]);
    assert_eq!(
        addrs.matches("inet ").count(),
        1,
        "one address after two ensures: {addrs}"
    );
    assert!(addrs.contains("inet 10.77.1.1/24"), "{addrs}");
    assert_eq!(sysctl("ipv6/conf/vmdbr1/disable_ipv6"), "1");
    assert_eq!(
        sysctl("ipv4/ip_forward"),
        "1",
        "a NAT network turns forwarding on"
    );
    let table = ok("nft", &["list", "table", "inet", "vmd"]);
    for rule in [
        "iifname \"vmdbr1\" ip daddr { 10.77.1.1, 255.255.255.255 } udp dport 67 accept",
        "oifname { \"vmdbr1\", \"vmdbr2\" } drop",
        "ip saddr 10.77.2.0/24 oifname != \"vmdbr2\" masquerade",
    ] {
        assert!(table.contains(rule), "{rule} missing in {table}");
    }
    assert!(
        !net_dir.join("dnsmasq-2.pid").exists(),
        "no dnsmasq without DHCP"
    );
}

async fn host_subnets_skip_vmd_bridges(host: &HostNet) {
    ok(
        "ip",
        &[
            "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
        ],
    );
    ok("ip", &["link", "set", "uplink0", "up"]);
    ok("ip", &["link", "set", "uplink1", "up"]);
    ok("ip", &["addr", "add", "192.168.77.5/24", "dev", "uplink0"]);
    ok(
        "ip",
        &["route", "add", "172.30.0.0/16", "via", "192.168.77.2"],
    );
    ok("ip", &["route", "add", "default", "via", "192.168.77.1"]);
    let subnets = host.host_subnets().await.expect("host subnets");
    let want = |a: [u8; 4], p: u8| (Ipv4Addr::from(a), p);
    assert!(
        subnets.contains(&want([192, 168, 77, 0], 24)),
        "{subnets:?}"
    );
    assert!(subnets.contains(&want([172, 30, 0, 0], 16)), "{subnets:?}");
    assert!(
        !subnets.iter().any(|(a, _)| a.octets()[..2] == [10, 77]),
        "{subnets:?}"
    );
    assert!(
        !subnets.iter().any(|(_, p)| *p == 0),
        "no default route: {subnets:?}"
    );
    ok("ip", &["link", "del", "uplink0"]);
}

async fn dnsmasq_is_adopted_and_restarted(net_dir: &Path, iso: &NetSpec) {
    let (pid, start) = dnsmasq_of(net_dir, iso.id);
    let fresh = HostNet::new(net_dir.to_path_buf());
    assert!(
        !fresh.ensure_dnsmasq(iso).await.expect("adopt"),
        "a live dnsmasq is kept"
    );
    assert_eq!(dnsmasq_of(net_dir, iso.id), (pid, start));
    let raw = i32::try_from(pid).expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let until = Instant::now() + Duration::from_secs(5);
    while is_same_process(pid, start) {
        assert!(Instant::now() < until, "dnsmasq {pid} survives SIGKILL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        fresh.ensure_dnsmasq(iso).await.expect("restart"),
        "a dead dnsmasq is restarted"
    );
    assert_ne!(dnsmasq_of(net_dir, iso.id).0, pid);
}

/// DHCP on the isolated network, guests reach each other but not the host; the NAT guest
/// reaches "the outside" through masquerading, the isolated one does not.
async fn traffic(host: &HostNet, iso: &NetSpec, nat: &NetSpec) {
    let (mac_a, mac_b) = ("52:54:00:77:01:0a", "52:54:00:77:01:0b");
    let a = peer("vmdtva", mac_a);
    let b = peer("vmdtvb", mac_b);
    host.attach_tap("vmdtva", iso).await.expect("attach a");
    host.attach_tap("vmdtvb", iso).await.expect("attach b");
    assert!(link_line("vmdtva").contains("master vmdbr1"));
    let ip_a = lease_for(host, iso, &a, mac_a).await;
    let ip_b = lease_for(host, iso, &b, mac_b).await;
    exec_ok(
        &a,
        &["ip", "addr", "add", &format!("{ip_a}/24"), "dev", "eth0"],
    );
    exec_ok(
        &b,
        &["ip", "addr", "add", &format!("{ip_b}/24"), "dev", "eth0"],
    );
    assert!(
        pings(&a, &ip_b.to_string()),
        "guests on one network reach each other"
    );
    assert!(
        !pings(&a, "10.77.1.1"),
        "an isolated network does not reach the host"
    );
    assert!(
        !run(
            "busybox",
            &["ping", "-c", "1", "-W", "2", &ip_a.to_string()]
        )
        .status
        .success(),
        "the host does not reach guests"
    );

    let outside = peer("vmdtup", "52:54:00:77:09:01");
    ok("ip", &["addr", "add", "198.51.100.1/24", "dev", "vmdtup"]);
    ok("ip", &["link", "set", "vmdtup", "up"]);
    exec_ok(
        &outside,
        &["ip", "addr", "add", "198.51.100.2/24", "dev", "eth0"],
    );
    let n = peer("vmdtvn", "52:54:00:77:02:0a");
    host.attach_tap("vmdtvn", nat).await.expect("attach n");
    exec_ok(&n, &["ip", "addr", "add", "10.77.2.50/24", "dev", "eth0"]);
    exec_ok(&n, &["ip", "route", "add", "default", "via", "10.77.2.1"]);
    exec_ok(&a, &["ip", "route", "add", "default", "via", "10.77.1.1"]);
    assert!(pings(&n, "10.77.2.1"), "a NAT guest may ping its gateway");
    assert!(
        pings(&n, "198.51.100.2"),
        "a NAT guest reaches the outside (masqueraded: the outside has no route back)"
    );
    assert!(!pings(&a, "198.51.100.2"), "an isolated guest does not");
    assert!(
        !pings(&n, &ip_a.to_string()),
        "networks do not reach each other"
    );
}

async fn tap_joins_the_bridge(host: &HostNet, iso: &NetSpec) {
    let tap = tap_name(9, 0);
    ok("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"]);
    for _ in 0..2 {
        host.attach_tap(&tap, iso).await.expect("attach tap");
    }
    let line = link_line(&tap);
    assert!(
        line.contains("master vmdbr1") && line.contains(",UP"),
        "{line}"
    );
    assert_eq!(sysctl(&format!("ipv6/conf/{tap}/disable_ipv6")), "1");
    let missing = host.attach_tap("vmd9n7", iso).await;
    assert!(
        matches!(missing, Err(vmd::hostnet::HostNetError::NoSuchLink { .. })),
        "{missing:?}"
    );
}

async fn leftovers_are_found_and_removed(host: &HostNet, net_dir: &Path, known: &[NetSpec]) {
    assert_eq!(
        host.stale_ids(known).await.expect("stale"),
        Vec::<i64>::new()
    );
    let gone = spec(3, "10.77.3.0/24", true, false);
    let mut with_gone = known.to_vec();
    with_gone.push(gone.clone());
    host.ensure(&gone, &with_gone)
        .await
        .expect("ensure a third");
    let (first, first_start) = dnsmasq_of(net_dir, 3);
    // The id comes back with another subnet (after a removal that did not finish): the
    // bridge's address and dnsmasq follow.
    let reused = spec(3, "10.77.4.0/24", true, true);
    with_gone.pop();
    with_gone.push(reused.clone());
    host.ensure(&reused, &with_gone)
        .await
        .expect("ensure the reused id");
    let addrs = ok("ip", &["-o", "-4", "addr", "show", "dev", "vmdbr3"]);
    assert!(
        addrs.contains("inet 10.77.4.1/24") && !addrs.contains("10.77.3."),
        "{addrs}"
    );
    assert!(
        !is_same_process(first, first_start),
        "the old dnsmasq is stopped"
    );
    let (pid, start) = dnsmasq_of(net_dir, 3);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("--dhcp-range=10.77.4.2,"));
    assert_eq!(host.stale_ids(known).await.expect("stale"), [3]);
    host.remove_stale(3, known).await.expect("remove stale");
    assert!(!is_same_process(pid, start), "its dnsmasq is stopped");
    assert_eq!(
        host.stale_ids(known).await.expect("stale"),
        Vec::<i64>::new()
    );
    let table = ok("nft", &["list", "table", "inet", "vmd"]);
    assert!(
        table.contains("vmdbr1") && !table.contains("vmdbr3"),
        "{table}"
    );
}

async fn tear_down(host: &HostNet, net_dir: &Path, iso: &NetSpec, nat: &NetSpec) {
    let (pid, start) = dnsmasq_of(net_dir, iso.id);
    host.remove(iso, std::slice::from_ref(nat))
        .await
        .expect("remove isolated");
    assert!(!is_same_process(pid, start), "dnsmasq is stopped");
    assert!(
        !net_dir.join("dnsmasq-1.leases").exists(),
        "files are removed"
    );
    let table = ok("nft", &["list", "table", "inet", "vmd"]);
    assert!(!table.contains("vmdbr1"), "{table}");
    for _ in 0..2 {
        host.remove(nat, &[]).await.expect("remove nat");
    }
    let links = host.links_with_prefix("vmdbr").await.expect("links");
    assert!(links.is_empty(), "{links:?}");
    let tables = ok("nft", &["list", "tables"]);
    assert!(!tables.contains("inet vmd"), "{tables}");
    assert!(
        !std::fs::read_dir(net_dir).is_ok_and(|mut d| d.next().is_some()),
        "no dnsmasq files are left"
    );
}
