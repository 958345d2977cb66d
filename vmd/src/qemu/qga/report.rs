//! What the guest agent reported, bounded and sanitised: every string loses its control
//! characters and is cut to a fixed length, addresses must parse as IP addresses, counts are
//! capped. Loopback interfaces and addresses are left out.

use std::net::IpAddr;

use serde_json::Value;

/// Longest OS name, kernel release or hostname kept, in characters.
pub const MAX_TEXT: usize = 128;
/// Longest interface name kept, in characters.
const MAX_IFNAME: usize = 32;
/// Most interfaces looked at.
pub const MAX_INTERFACES: usize = 32;
/// Most addresses kept in all.
pub const MAX_ADDRESSES: usize = 64;

/// One address of a guest interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestIp {
    /// Interface name (sanitised).
    pub interface: String,
    /// The address, as vmd formats it.
    pub address: IpAddr,
    /// Prefix length, within the address family's range.
    pub prefix: u8,
    /// The interface's MAC address (`xx:xx:xx:xx:xx:xx`, lower case), if well-formed.
    pub mac: Option<String>,
}

/// The agent's answers of one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// `pretty-name` of `guest-get-osinfo` (else `name` and `version`).
    pub os: Option<String>,
    /// `kernel-release` of `guest-get-osinfo`.
    pub kernel: Option<String>,
    /// `host-name` of `guest-get-host-name`.
    pub hostname: Option<String>,
    /// Non-loopback addresses of `guest-network-get-interfaces`.
    pub addresses: Vec<GuestIp>,
}

impl GuestReport {
    /// Takes `guest-get-osinfo`'s reply.
    pub fn set_osinfo(&mut self, v: &Value) {
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(|s| clean(s, MAX_TEXT));
        let joined = match (field("name"), field("version")) {
            (Some(n), Some(ver)) => Some(clean(&format!("{n} {ver}"), MAX_TEXT)),
            (n, _) => n,
        };
        self.os = field("pretty-name").filter(|s| !s.is_empty()).or(joined);
        self.kernel = field("kernel-release").filter(|s| !s.is_empty());
    }

    /// Takes `guest-get-host-name`'s reply.
    pub fn set_hostname(&mut self, v: &Value) {
        self.hostname = v
            .get("host-name")
            .and_then(Value::as_str)
            .map(|s| clean(s, MAX_TEXT))
            .filter(|s| !s.is_empty());
    }

    /// Takes `guest-network-get-interfaces`' reply.
    pub fn set_interfaces(&mut self, v: &Value) {
        self.addresses.clear();
        let interfaces = v.as_array().map(Vec::as_slice).unwrap_or_default();
        for iface in interfaces.iter().take(MAX_INTERFACES) {
            let name = iface.get("name").and_then(Value::as_str).unwrap_or("");
            let name = clean(name, MAX_IFNAME);
            if name == "lo" {
                continue;
            }
            let mac = iface
                .get("hardware-address")
                .and_then(Value::as_str)
                .and_then(mac);
            let ips = iface.get("ip-addresses").and_then(Value::as_array);
            for ip in ips.map(Vec::as_slice).unwrap_or_default() {
                if self.addresses.len() >= MAX_ADDRESSES {
                    return;
                }
                if let Some((address, prefix)) = ip_of(ip) {
                    let (interface, mac) = (name.clone(), mac.clone());
                    self.addresses.push(GuestIp {
                        interface,
                        address,
                        prefix,
                        mac,
                    });
                }
            }
        }
    }
}

/// A valid, non-loopback address and prefix from one `ip-addresses` entry.
fn ip_of(v: &Value) -> Option<(IpAddr, u8)> {
    let text = v.get("ip-address").and_then(Value::as_str)?;
    if text.len() > 64 {
        return None;
    }
    let address: IpAddr = text.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = v
        .get("prefix")
        .and_then(Value::as_u64)
        .filter(|p| *p <= max)?;
    (!address.is_loopback()).then_some((address, prefix as u8))
}

/// A MAC address in `xx:xx:xx:xx:xx:xx` form (lower-cased), else `None`.
fn mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| text.to_ascii_lowercase())
}

/// `text` without control characters (C0, C1, DEL) or bidirectional overrides, trimmed and
/// cut to `max` characters: safe for logs, terminals and the API.
pub fn clean(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(max)
        .collect();
    kept.trim().to_string()
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}
