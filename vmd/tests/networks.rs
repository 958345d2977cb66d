//! Lab networks with real guests, bridges, dnsmasq and nftables — all inside network
//! namespaces the test creates: vmd runs in one (`nsenter`), a second one plays "the
//! outside" behind a veth pair. Nothing touches the host's own network.
//!
//! The journey: isolated networks with DHCP (leases, ping between members), no way across
//! networks or from the host into one (also not through a guest's user-mode NIC), NAT to the
//! outside (the server sees the host's masqueraded address), a live port forward, `kill -9`
//! of vmd and a killed dnsmasq (links keep working, dnsmasq comes back), and removal leaving
//! no bridge, tap, dnsmasq or firewall rule.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::netns::NetNs;

use common::guest::{Console, BOOT};
use common::Daemon;

/// How long a guest may take to get its DHCP lease after boot.
const LEASE: Duration = Duration::from_secs(120);

fn run(d: &Daemon, args: &[&str]) -> Output {
    d.vmctl(args)
}

fn ok(d: &Daemon, args: &[&str]) -> Value {
    let mut full = vec!["--output", "json"];
    full.extend_from_slice(args);
    let out = run(d, &full);
    assert!(
        out.status.success(),
        "vmctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Runs vmctl expecting exit `code`; returns stderr.
fn fails(d: &Daemon, args: &[&str], code: i32) -> String {
    let out = run(d, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "vmctl {args:?}: {err}");
    err
}

fn start_in(ns: &NetNs, dir: tempfile::TempDir) -> Daemon {
    let wrapper = ns.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    Daemon::start_in_with(dir, "", &wrapper)
}

/// Waits until every member of `net` named in `vms` has a leased address.
fn leases(d: &Daemon, net: &str, vms: &[&str]) -> Vec<String> {
    let end = Instant::now() + LEASE;
    loop {
        let shown = ok(d, &["net", "show", net]);
        let ips: Vec<Option<String>> = vms
            .iter()
            .map(|vm| {
                shown["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["vm"] == *vm)
                    .and_then(|m| m["ip"].as_str().map(String::from))
            })
            .collect();
        if ips.iter().all(Option::is_some) {
            return ips.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < end,
            "no leases on {net} for {vms:?}: {shown}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `command` on `vm`'s serial console; returns its exit status.
fn guest(d: &Daemon, vm: &str, command: &str) -> (i32, String) {
    let mut console = Console::attach(d, vm);
    console.capture(command, Duration::from_secs(60))
}

/// Whether a TCP connection from inside `ns` to `addr` succeeds and yields some bytes.
fn host_reaches(ns: &NetNs, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    ns.run(move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        (!text.is_empty()).then_some(text)
    })
}

fn dnsmasq_pids(ns: &NetNs) -> Vec<i32> {
    ns.pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dnsmasq")
                && testkit::procs::alive(u64::try_from(*pid).unwrap_or(0))
        })
        .collect()
}

fn vmd_links(ns: &NetNs) -> Vec<String> {
    ns.links()
        .into_iter()
        .filter(|l| l.starts_with("vmd"))
        .collect()
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lab_networks_from_dhcp_to_teardown() {
    let ns = NetNs::new();
    let outside = NetNs::new();
    ns.veth_pair(&outside, "10.250.0.1/30", "10.250.0.2/30");
    let d = start_in(&ns, tempfile::tempdir().expect("tempdir"));
    d.import_guest();

    // Networks: two isolated ones with DHCP and a NAT one; a subnet on the host's veth is
    // refused, and so is a second network on a taken subnet.
    ok(&d, &["net", "create", "lab", "--dhcp"]);
    ok(&d, &["net", "create", "other", "--dhcp"]);
    ok(
        &d,
        &[
            "net",
            "create",
            "wan",
            "--dhcp",
            "--nat",
            "--subnet",
            "10.213.50.0/24",
        ],
    );
    let err = fails(
        &d,
        &["net", "create", "clash", "--subnet", "10.250.0.0/24"],
        6,
    );
    assert!(err.contains("overlaps"), "{err}");
    let err = fails(
        &d,
        &["net", "create", "clash", "--subnet", "10.213.50.0/24"],
        6,
    );
    assert!(err.contains("network wan"), "{err}");

    // a1, n1: lab NICs only; a2: user NIC (port forwards) + lab; b1: user NIC + other.
    for (vm, extra) in [
        ("a1", vec!["--net", "lab", "--no-user-net"]),
        ("a2", vec!["--net", "lab"]),
        ("b1", vec!["--net", "other"]),
        ("n1", vec!["--net", "wan", "--no-user-net"]),
    ] {
        let mut args = vec!["create", vm, "--image", "guest", "--memory", "128M"];
        args.extend(extra);
        ok(&d, &args);
        ok(&d, &["start", vm]);
    }
    for vm in ["a1", "a2", "b1", "n1"] {
        d.wait_log(vm, "GUEST-READY", 1, BOOT);
    }
    let lab = leases(&d, "lab", &["a1", "a2"]);
    let other = leases(&d, "other", &["b1"]);
    let wan = leases(&d, "wan", &["n1"]);
    let a1 = ok(&d, &["show", "a1"]);
    assert_eq!(
        a1["nics"][0]["ip"],
        lab[0].as_str(),
        "vmctl show has the lease: {a1}"
    );
    assert!(
        a1["nics"][0]["mac"]
            .as_str()
            .is_some_and(|m| m.starts_with("02:")),
        "{a1}"
    );

    // Members of one network reach each other.
    let (rc, out) = guest(&d, "a1", &format!("ping -c 1 -W 5 {}", lab[1]));
    assert_eq!(rc, 0, "a1 cannot ping a2: {out}");
    let (rc, out) = guest(&d, "a2", &format!("nc -w 5 {} 7777 </dev/null", lab[0]));
    assert!(
        rc == 0 && out.contains("a1"),
        "a2 cannot reach a1's listener: {out}"
    );

    // Nothing crosses networks: not through the user-mode NIC (QEMU connecting from the
    // host) and not routed through the host's bridge address.
    let (_, out) = guest(&d, "b1", &format!("nc -w 3 {} 7777 </dev/null", lab[0]));
    assert!(
        !out.lines().any(|l| l.trim() == "a1"),
        "b1 reached a1 via its user NIC: {out}"
    );
    let gateway = ok(&d, &["net", "show", "other"])["gateway"]
        .as_str()
        .expect("gw")
        .to_string();
    let lab_net = ok(&d, &["net", "show", "lab"])["subnet"]
        .as_str()
        .expect("subnet")
        .to_string();
    guest(
        &d,
        "b1",
        &format!("ip route add {lab_net} via {gateway} dev eth1"),
    );
    // a1 routes back the same way, so only the host's forwarding rules stand in between.
    let lab_gw = ok(&d, &["net", "show", "lab"])["gateway"]
        .as_str()
        .expect("gw")
        .to_string();
    let other_net = ok(&d, &["net", "show", "other"])["subnet"]
        .as_str()
        .expect("subnet")
        .to_string();
    guest(
        &d,
        "a1",
        &format!("ip route add {other_net} via {lab_gw} dev eth0"),
    );
    let (rc, out) = guest(&d, "b1", &format!("ping -c 1 -W 3 {}", lab[0]));
    assert_ne!(rc, 0, "b1 pinged a1 across networks: {out}");
    let (_, out) = guest(&d, "b1", &format!("nc -w 3 {} 7777 </dev/null", lab[0]));
    assert!(
        !out.lines().any(|l| l.trim() == "a1"),
        "b1 reached a1 across networks: {out}"
    );

    // The host reaches no guest on an isolated network.
    assert_eq!(
        host_reaches(&ns, &format!("{}:7777", lab[0])),
        None,
        "host reached a1"
    );
    let ping = ns.exec(&["ping", "-c", "1", "-W", "2", &lab[0]]);
    assert!(!ping.status.success(), "host pinged a1");

    // NAT: n1 reaches a server in the outside namespace, which sees the host's address.
    let server = std::thread::scope(|scope| {
        let listener = outside.run(|| TcpListener::bind("10.250.0.2:9000").expect("bind outside"));
        let accept = scope.spawn(move || {
            listener.set_nonblocking(false).expect("blocking");
            let (stream, peer) = listener.accept().expect("accept");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
            (peer, line)
        });
        let (rc, out) = guest(
            &d,
            "n1",
            "echo hello-from-$(hostname) | nc -w 5 10.250.0.2 9000",
        );
        assert_eq!(
            rc, 0,
            "n1 could not reach the outside: {out} (lease {wan:?})"
        );
        accept.join().expect("accept thread")
    });
    assert_eq!(server.1.trim(), "hello-from-n1");
    assert_eq!(
        server.0.ip().to_string(),
        "10.250.0.1",
        "masqueraded source"
    );
    // NAT is for the outside, not into other networks.
    let (rc, _) = guest(&d, "n1", &format!("ping -c 1 -W 3 {}", other[0]));
    assert_ne!(rc, 0, "n1 reached b1's network through NAT");

    // A port forward added live reaches a2's listener from the host, and goes away.
    ok(&d, &["port", "add", "a2", "18080", "7777"]);
    let got = host_reaches(&ns, "127.0.0.1:18080");
    assert_eq!(got.as_deref().map(str::trim), Some("a2"), "port forward");
    assert_eq!(ok(&d, &["port", "ls", "a2"])[0]["host_port"], 18080);

    // kill -9 of vmd, and dnsmasq killed meanwhile: links keep working; dnsmasq is back.
    let before = dnsmasq_pids(&ns);
    assert_eq!(before.len(), 3, "one dnsmasq per DHCP network");
    let dir = d.kill9();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill dnsmasq");
    let d = start_in(&ns, dir);
    wait_until("dnsmasq restarted", Duration::from_secs(30), || {
        dnsmasq_pids(&ns).len() == 3
    });
    assert!(
        dnsmasq_pids(&ns).contains(&before[1]),
        "a live dnsmasq was kept"
    );
    let (rc, out) = guest(&d, "a1", &format!("ping -c 1 -W 5 {}", lab[1]));
    assert_eq!(rc, 0, "a1 cannot ping a2 after the restart: {out}");
    // Another program flushes the ruleset: the supervisor loads vmd's table again.
    assert!(ns.exec(&["nft", "flush", "ruleset"]).status.success());
    wait_until("the table reloaded", Duration::from_secs(30), || {
        ns.nft_ruleset().contains("table inet vmd")
    });
    assert_eq!(
        host_reaches(&ns, &format!("{}:7777", lab[0])),
        None,
        "host reached a1"
    );
    let got = host_reaches(&ns, "127.0.0.1:18080");
    assert_eq!(
        got.as_deref().map(str::trim),
        Some("a2"),
        "port forward after restart"
    );
    ok(&d, &["port", "rm", "a2", "18080"]);
    assert_eq!(
        host_reaches(&ns, "127.0.0.1:18080"),
        None,
        "port forward removed"
    );

    // Removal: refused while used (naming the VMs), then nothing is left behind.
    let err = fails(&d, &["net", "rm", "lab"], 4);
    assert!(err.contains("a1") && err.contains("a2"), "{err}");
    for vm in ["a1", "a2", "b1", "n1"] {
        ok(&d, &["stop", "--force", vm]);
        ok(&d, &["rm", vm]);
    }
    for net in ["lab", "other", "wan"] {
        ok(&d, &["net", "rm", net]);
    }
    assert_eq!(vmd_links(&ns), Vec::<String>::new(), "bridges or taps left");
    let rules = ns.nft_ruleset();
    assert!(!rules.contains("vmd"), "nft rules left: {rules}");
    wait_until("dnsmasq gone", Duration::from_secs(10), || {
        dnsmasq_pids(&ns).is_empty()
    });
}

/// The worked example of docs/networks.md: a router VM between two segments.
#[test]
fn a_router_vm_joins_two_segments() {
    let ns = NetNs::new();
    let d = start_in(&ns, tempfile::tempdir().expect("tempdir"));
    d.import_guest();
    ok(&d, &["net", "create", "seg1", "--dhcp"]);
    ok(&d, &["net", "create", "seg2", "--dhcp"]);
    for (vm, nets) in [
        ("router", vec!["seg1", "seg2"]),
        ("left", vec!["seg1"]),
        ("right", vec!["seg2"]),
    ] {
        let mut args = vec![
            "create",
            vm,
            "--image",
            "guest",
            "--memory",
            "128M",
            "--no-user-net",
        ];
        for net in nets {
            args.extend(["--net", net]);
        }
        ok(&d, &args);
        ok(&d, &["start", vm]);
    }
    for vm in ["router", "left", "right"] {
        d.wait_log(vm, "GUEST-READY", 1, BOOT);
    }
    let seg1 = leases(&d, "seg1", &["router", "left"]);
    let seg2 = leases(&d, "seg2", &["router", "right"]);
    let subnet = |net: &str| {
        ok(&d, &["net", "show", net])["subnet"]
            .as_str()
            .expect("subnet")
            .to_string()
    };
    // Without routes the segments do not meet.
    let (rc, _) = guest(&d, "left", &format!("ping -c 1 -W 2 {}", seg2[1]));
    assert_ne!(rc, 0, "left reached right without a router");
    guest(&d, "router", "echo 1 > /proc/sys/net/ipv4/ip_forward");
    guest(
        &d,
        "left",
        &format!("ip route add {} via {}", subnet("seg2"), seg1[0]),
    );
    guest(
        &d,
        "right",
        &format!("ip route add {} via {}", subnet("seg1"), seg2[0]),
    );
    let (rc, out) = guest(&d, "left", &format!("ping -c 1 -W 5 {}", seg2[1]));
    assert_eq!(rc, 0, "left cannot ping right through the router: {out}");
    let (rc, out) = guest(&d, "left", &format!("nc -w 5 {} 7777 </dev/null", seg2[1]));
    assert!(rc == 0 && out.lines().any(|l| l.trim() == "right"), "{out}");
}

/// NICs change only while stopped; ports and MACs are checked; taps live with the process.
#[test]
fn nics_and_port_forwards_follow_the_rules() {
    let ns = NetNs::new();
    let d = start_in(&ns, tempfile::tempdir().expect("tempdir"));
    d.import_guest();
    ok(&d, &["net", "create", "n1", "--dhcp"]);
    let n2 = ok(&d, &["net", "create", "n2", "--subnet", "10.213.77.0/24"]);
    assert_eq!(
        (n2["gateway"].clone(), n2["dhcp"].clone()),
        (Value::Null, Value::Bool(false))
    );
    let v = ok(
        &d,
        &[
            "create", "v", "--image", "guest", "--memory", "128M", "--net", "n1",
        ],
    );
    let mac1 = v["nics"][0]["mac"].as_str().expect("mac").to_string();
    let v = ok(&d, &["nic", "add", "v", "--net", "n2"]);
    let nets: Vec<&str> = v["nics"]
        .as_array()
        .expect("nics")
        .iter()
        .filter_map(|n| n["network"].as_str())
        .collect();
    assert_eq!(nets, ["n1", "n2"]);
    fails(&d, &["nic", "add", "v", "--net", "n2"], 4);
    fails(&d, &["nic", "add", "v", "--net", "nope"], 3);
    let v = ok(&d, &["nic", "rm", "v", "--net", "n1"]);
    assert_eq!(v["nics"].as_array().map(Vec::len), Some(1));
    assert_ne!(
        v["nics"][0]["mac"],
        mac1.as_str(),
        "each NIC has its own MAC"
    );
    fails(&d, &["nic", "rm", "v", "--net", "n1"], 3);

    // Port forwards: loopback only by default, unique host ports, the user NIC needed.
    let err = fails(&d, &["port", "add", "v", "0.0.0.0:20001", "22"], 6);
    assert!(err.contains("not allowed"), "{err}");
    ok(&d, &["port", "add", "v", "20001", "22"]);
    assert_eq!(
        ok(&d, &["show", "v"])["ssh_port"],
        20001,
        "a forward to 22 is the ssh port"
    );
    fails(
        &d,
        &["create", "w", "--image", "guest", "--ssh-port", "20001"],
        4,
    );
    ok(
        &d,
        &["create", "quiet", "--image", "guest", "--no-user-net"],
    );
    let err = fails(&d, &["port", "add", "quiet", "20002", "22"], 6);
    assert!(err.contains("user-mode"), "{err}");

    // While running: the tap is on its bridge, NICs cannot change; stopped: the tap is gone.
    ok(&d, &["start", "v"]);
    let v = ok(&d, &["show", "v"]);
    let tap = v["nics"][0]["tap"]
        .as_str()
        .expect("tap while running")
        .to_string();
    let link = ns.ip_ok(&["-o", "link", "show", &tap]);
    assert!(link.contains("master vmdbr"), "{link}");
    fails(&d, &["nic", "add", "v", "--net", "n1"], 4);
    fails(&d, &["net", "rm", "n2"], 4);
    ok(&d, &["stop", "--force", "v"]);
    assert!(!vmd_links(&ns).contains(&tap), "tap left after stop");

    // A host reboot, as far as networks go: bridges, rules and dnsmasq gone while vmd is
    // down. The next vmd builds them all again.
    let dir = d.kill9();
    for link in vmd_links(&ns) {
        ns.ip_ok(&["link", "del", &link]);
    }
    assert!(ns.exec(&["nft", "flush", "ruleset"]).status.success());
    for pid in dnsmasq_pids(&ns) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_until("dnsmasq gone", Duration::from_secs(10), || {
        dnsmasq_pids(&ns).is_empty()
    });
    let d = start_in(&ns, dir);
    assert_eq!(
        vmd_links(&ns).len(),
        2,
        "both bridges back: {:?}",
        ns.links()
    );
    assert!(ns.nft_ruleset().contains("table inet vmd"), "rules back");
    assert_eq!(dnsmasq_pids(&ns).len(), 1, "dnsmasq of n1 back");
    assert_eq!(ok(&d, &["net", "ls"]).as_array().map(Vec::len), Some(2));
}

/// vmd without CAP_NET_ADMIN: networks are refused with a clear error, the rest works.
#[test]
fn without_cap_net_admin_networks_are_refused_and_the_rest_works() {
    let d = Daemon::start_with(
        "",
        &[
            "setpriv",
            "--inh-caps=-net_admin",
            "--bounding-set=-net_admin",
            "--",
        ],
    );
    let err = fails(&d, &["net", "create", "x", "--dhcp"], 5);
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");
    assert_eq!(ok(&d, &["net", "ls"]), Value::Array(vec![]));
    d.import_guest();
    ok(&d, &["create", "v", "--image", "guest", "--memory", "128M"]);
    ok(&d, &["port", "add", "v", "20101", "22"]);
    fails(&d, &["create", "w", "--image", "guest", "--net", "x"], 3);
}
