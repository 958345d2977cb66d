//! Links, addresses and routes over rtnetlink, plus the per-link IPv6 sysctl.
//!
//! A [`Netlink`] is one netlink socket of the calling thread's network namespace, with its
//! connection task on the current tokio runtime (aborted on drop). Requests that find their
//! object already there (`EEXIST`) or already gone (`ENODEV`) count as done, so every
//! operation is idempotent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{BridgeStpState, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::HostNetError;

/// The kernel's local routing table (addresses of the host itself; covered by addresses).
const RT_TABLE_LOCAL: u8 = 255;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;

/// One netlink socket and its connection task.
pub struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The errno of a netlink error reply, if it is one.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().raw_os_error(),
        _ => None,
    }
}

fn failed(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> HostNetError {
    let op = op.into();
    move |source| HostNetError::Netlink { op, source }
}

/// Turns a failure with errno `ok_errno` into `Ok(false)`, success into `Ok(true)`.
fn tolerate(
    result: Result<(), rtnetlink::Error>,
    ok_errno: i32,
    op: String,
) -> Result<bool, HostNetError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(ok_errno) => Ok(false),
        Err(e) => Err(failed(op)(e)),
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn connect() -> Result<Netlink, HostNetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| HostNetError::Io {
                path: PathBuf::from("netlink socket"),
                source,
            })?;
        let task = tokio::spawn(connection);
        Ok(Netlink { handle, task })
    }

    /// The index of link `name`, if it exists.
    pub async fn index(&self, name: &str) -> Result<Option<u32>, HostNetError> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(failed(format!("look up link {name}"))(e)),
        }
    }

    async fn require(&self, name: &str) -> Result<u32, HostNetError> {
        self.index(name)
            .await?
            .ok_or_else(|| HostNetError::NoSuchLink { name: name.into() })
    }

    /// Makes bridge `name` exist (no STP, MAC `mac`) and be up with IPv6 off; true if it
    /// created it.
    pub async fn ensure_bridge(&self, name: &str, mac: [u8; 6]) -> Result<bool, HostNetError> {
        let mut created = false;
        if self.index(name).await?.is_none() {
            // Created down: IPv6 goes off before the link is up (no link-local address, no
            // router solicitation).
            let bridge = LinkMessageBuilder::<LinkBridge>::new(name)
                .stp_state(BridgeStpState::Disabled)
                .address(mac.to_vec())
                .build();
            let result = self.handle.link().add(bridge).execute().await;
            created = tolerate(result, EEXIST, format!("create bridge {name}"))?;
        }
        disable_ipv6(name)?;
        let index = self.require(name).await?;
        self.set(
            LinkUnspec::new_with_index(index).up().build(),
            format!("set {name} up"),
        )
        .await?;
        Ok(created)
    }

    async fn set(&self, message: LinkMessage, op: String) -> Result<(), HostNetError> {
        self.handle
            .link()
            .change(message)
            .execute()
            .await
            .map_err(failed(op))
    }

    /// Makes `want` the only IPv4 address of link `name` (none when `None`): a bridge whose
    /// network id was reused keeps no address of the earlier subnet.
    pub async fn set_address(
        &self,
        name: &str,
        want: Option<(Ipv4Addr, u8)>,
    ) -> Result<(), HostNetError> {
        let index = self.require(name).await?;
        let request = self.handle.address().get().set_link_index_filter(index);
        let present: Vec<AddressMessage> = request
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("list addresses of {name}")))?;
        let mut has_wanted = false;
        for message in present.into_iter().filter(|m| m.header.index == index) {
            let Some(addr) = address_of(&message) else {
                continue;
            };
            if Some((addr, message.header.prefix_len)) == want {
                has_wanted = true;
                continue;
            }
            let result = self.handle.address().del(message).execute().await;
            tolerate(result, EADDRNOTAVAIL, format!("remove {addr} from {name}"))?;
        }
        match want {
            Some((addr, prefix)) if !has_wanted => {
                let add = self.handle.address().add(index, IpAddr::V4(addr), prefix);
                let op = format!("add {addr}/{prefix} to {name}");
                tolerate(add.execute().await, EEXIST, op).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Deletes link `name`; false if there was none.
    pub async fn delete_link(&self, name: &str) -> Result<bool, HostNetError> {
        let Some(index) = self.index(name).await? else {
            return Ok(false);
        };
        let result = self.handle.link().del(index).execute().await;
        tolerate(result, ENODEV, format!("delete link {name}"))
    }

    /// Puts the existing `tap` on `bridge` and sets it up.
    pub async fn attach(&self, tap: &str, bridge: &str) -> Result<(), HostNetError> {
        let tap_index = self.require(tap).await?;
        let bridge_index = self.require(bridge).await?;
        let message = LinkUnspec::new_with_index(tap_index)
            .controller(bridge_index)
            .up()
            .build();
        self.set(message, format!("attach {tap} to {bridge}")).await
    }

    /// Every link's index and name.
    async fn links(&self) -> Result<HashMap<u32, String>, HostNetError> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("list links"))?;
        Ok(links
            .iter()
            .filter_map(|l| link_name(l).map(|n| (l.header.index, n)))
            .collect())
    }

    /// Names of the links that start with `prefix`, sorted.
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, HostNetError> {
        let mut names: Vec<String> = self
            .links()
            .await?
            .into_values()
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    }

    /// IPv4 subnets of addresses and non-default routes on links not named `skip_prefix…`,
    /// as (network address, prefix), sorted and without duplicates.
    pub async fn host_subnets(
        &self,
        skip_prefix: &str,
    ) -> Result<Vec<(Ipv4Addr, u8)>, HostNetError> {
        let links = self.links().await?;
        let skipped = |index: u32| {
            links
                .get(&index)
                .is_some_and(|n| n.starts_with(skip_prefix))
        };
        let mut subnets = self.address_subnets(&skipped).await?;
        subnets.extend(self.route_subnets(&skipped).await?);
        subnets.sort();
        subnets.dedup();
        Ok(subnets)
    }

    async fn address_subnets(
        &self,
        skipped: &impl Fn(u32) -> bool,
    ) -> Result<Vec<(Ipv4Addr, u8)>, HostNetError> {
        let addresses: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("list addresses"))?;
        Ok(addresses
            .iter()
            .filter(|m| !skipped(m.header.index))
            .filter_map(|m| Some(network_of(address_of(m)?, m.header.prefix_len)))
            .collect())
    }

    async fn route_subnets(
        &self,
        skipped: &impl Fn(u32) -> bool,
    ) -> Result<Vec<(Ipv4Addr, u8)>, HostNetError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(failed("list routes"))?;
        Ok(routes
            .iter()
            .filter(|r| is_subnet_route(r) && !route_oif(r).is_some_and(skipped))
            .filter_map(|r| {
                Some(network_of(
                    route_destination(r)?,
                    r.header.destination_prefix_length,
                ))
            })
            .collect())
    }
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// The IPv4 address of an address message (the local end on point-to-point links).
fn address_of(message: &AddressMessage) -> Option<Ipv4Addr> {
    let v4 = |a: &AddressAttribute, want_local: bool| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) if want_local => Some(*ip),
        AddressAttribute::Address(IpAddr::V4(ip)) if !want_local => Some(*ip),
        _ => None,
    };
    let attrs = &message.attributes;
    attrs
        .iter()
        .find_map(|a| v4(a, true))
        .or_else(|| attrs.iter().find_map(|a| v4(a, false)))
}

/// A unicast route to a subnet (not the default route, not the local table).
fn is_subnet_route(route: &RouteMessage) -> bool {
    route.header.kind == RouteType::Unicast
        && route.header.table != RT_TABLE_LOCAL
        && route.header.destination_prefix_length > 0
}

fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    })
}

fn route_destination(route: &RouteMessage) -> Option<Ipv4Addr> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })
}

/// `addr` with the host bits cleared.
fn network_of(addr: Ipv4Addr, prefix: u8) -> (Ipv4Addr, u8) {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    (Ipv4Addr::from(u32::from(addr) & mask), prefix)
}

/// Turns IPv6 off on link `name` (`/proc/sys/net/ipv6/conf/NAME/disable_ipv6`). A host
/// without IPv6 has no such file, which is fine.
pub fn disable_ipv6(name: &str) -> Result<(), HostNetError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(HostNetError::NoSuchLink { name: name.into() });
    }
    let path = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"));
    match std::fs::write(&path, "1") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(HostNetError::Io { path, source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_of_addresses() {
        let addr = Ipv4Addr::new(192, 168, 7, 42);
        assert_eq!(network_of(addr, 24), (Ipv4Addr::new(192, 168, 7, 0), 24));
        assert_eq!(network_of(addr, 32), (addr, 32));
        assert_eq!(network_of(addr, 0), (Ipv4Addr::UNSPECIFIED, 0));
    }

    #[test]
    fn refuses_path_like_link_names() {
        for name in ["", "../x", "a/b", ".."] {
            assert!(matches!(
                disable_ipv6(name),
                Err(HostNetError::NoSuchLink { .. })
            ));
        }
    }
}
