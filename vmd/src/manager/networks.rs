//! Lab networks: `net.create|list|get|remove`, and bringing every network back at start-up.
//!
//! A network is a row first and host parts second: `create` inserts the row, then builds the
//! bridge, firewall table and dnsmasq ([`HostNet::ensure`]); when that fails it tears down
//! what was built and deletes the row, so a refused create leaves nothing. `remove` checks
//! for NICs, tears the host parts down, then deletes the row; a failed teardown keeps the
//! row so that the removal can be retried. Start-up ([`Manager::restore_networks`]) ensures
//! every stored network again (idempotent: a live bridge, rules and dnsmasq stay as they
//! are, so running guests are not disturbed) and re-attaches running guests' taps.

use std::net::Ipv4Addr;

use vm_proto::names::validate_name;
use vm_proto::types::{Lease, Network, NetworkCreate, NetworkMember, Subnet};

use super::access::allow;
use super::net_error::NetError;
use super::{now_secs, rfc3339, Error, Manager};
use crate::auth::policy::{Action, Object};
use crate::auth::Subject;
use crate::hostnet::{LeaseEntry, NetSpec};
use crate::store::{self, NetworkRow, NicRow, Owner};

/// The policy's view of a network row.
pub(super) fn net_object(row: &NetworkRow) -> Object {
    Object::Network {
        owner: row.owner.id,
        shared: row.shared,
    }
}

/// Whether `subject` may see the network at all.
fn sees(subject: &Subject, row: &NetworkRow) -> bool {
    crate::auth::policy::authorize(subject, Action::Read, net_object(row)).is_ok()
}

/// The host side's view of a network row (subnets were checked when stored).
pub(super) fn spec_of(row: &NetworkRow) -> Result<NetSpec, Error> {
    let subnet = Subnet::parse(&row.subnet)
        .map_err(|why| Error::Invalid(format!("stored network {}: {why}", row.name)))?;
    Ok(NetSpec {
        id: row.id,
        name: row.name.clone(),
        subnet,
        dhcp: row.dhcp,
        nat: row.nat,
    })
}

impl Manager {
    /// `net.create`.
    pub async fn create_network(
        &self,
        subject: &Subject,
        req: NetworkCreate,
    ) -> Result<Network, Error> {
        validate_name("network", &req.name).map_err(Error::Invalid)?;
        let mine = Object::Network {
            owner: subject.user_id,
            shared: false,
        };
        allow(subject, Action::Create, mine, || {
            Error::Forbidden("this account may not create networks")
        })?;
        self.hostnet
            .check_capable(req.dhcp)
            .map_err(NetError::Unavailable)?;
        let _guard = self.lock("net", &req.name, "create").await?;
        let _all = self.lock("net", "", "create").await?;
        if self.find_network(&req.name).await?.is_some() {
            return Err(NetError::Exists(req.name).into());
        }
        let subnet = self.choose_subnet(subject, req.subnet.as_deref()).await?;
        let row = self.insert_network(subject, &req, subnet).await?;
        let spec = spec_of(&row)?;
        if let Err(source) = self.bring_up(&spec).await {
            self.undo_create(&row, &spec).await;
            return Err(NetError::Host {
                name: row.name,
                source,
            }
            .into());
        }
        tracing::info!(network = %row.name, subnet = %row.subnet, dhcp = row.dhcp, nat = row.nat, user = %subject.name, "network created");
        self.get_network(subject, &req.name).await
    }

    async fn insert_network(
        &self,
        subject: &Subject,
        req: &NetworkCreate,
        subnet: Subnet,
    ) -> Result<NetworkRow, Error> {
        let mut row = NetworkRow {
            id: 0,
            name: req.name.clone(),
            owner: Owner {
                id: subject.user_id,
                name: subject.name.clone(),
                uid: None,
            },
            shared: subject.is_admin(),
            subnet: subnet.to_string(),
            dhcp: req.dhcp,
            nat: req.nat,
            created_at: now_secs(),
        };
        let limit = (!subject.is_admin()).then_some(self.config.net.max_networks_per_user);
        let new = row.clone();
        row.id = self
            .db(move |s| {
                s.with_tx(|tx| {
                    if let Some(max) = limit {
                        let now = store::count_networks_of(tx, new.owner.id)?;
                        if now >= max {
                            return Err(Error::Quota {
                                what: "networks",
                                now: now.to_string(),
                                would: (now + 1).to_string(),
                                limit: max.to_string(),
                            });
                        }
                    }
                    Ok(store::insert_network(tx, &new)?)
                })
            })
            .await?;
        Ok(row)
    }

    /// Removes a half-created network's host parts and row.
    async fn undo_create(&self, row: &NetworkRow, spec: &NetSpec) {
        self.forget_spec(spec.id);
        let remaining = self.specs();
        if let Err(err) = self.hostnet.remove(spec, &remaining).await {
            tracing::warn!(network = %row.name, cause = %err, "cannot undo a failed network create");
        }
        let id = row.id;
        let _ = self
            .db(move |s| Ok(s.with_tx_retry(|tx| store::delete_network(tx, id))?))
            .await;
    }

    /// Builds the host side of `spec` with every known network's firewall rules.
    async fn bring_up(&self, spec: &NetSpec) -> Result<(), crate::hostnet::HostNetError> {
        self.remember_spec(spec.clone());
        let all = self.specs();
        self.hostnet.ensure(spec, &all).await
    }

    /// The subnet for a new network: the requested one, checked, or the first free /24 of
    /// the pool. Users stay inside the pool; nobody overlaps a network or a host route.
    async fn choose_subnet(
        &self,
        subject: &Subject,
        wanted: Option<&str>,
    ) -> Result<Subnet, Error> {
        let pool = self.config.net.pool;
        let taken = self.taken_subnets(subject).await?;
        let Some(text) = wanted else {
            return free_slice(pool, &taken)
                .ok_or_else(|| NetError::PoolFull(pool.to_string()).into());
        };
        let subnet = Subnet::parse(text).map_err(Error::Invalid)?;
        // A user gets at most a /24 at a time: one network cannot take the whole pool.
        let inside = pool.contains(subnet.network) && subnet.prefix >= pool.prefix.max(24);
        if !subject.is_admin() && !inside {
            return Err(NetError::OutsidePool {
                subnet: subnet.to_string(),
                pool: pool.to_string(),
            }
            .into());
        }
        match taken.iter().find(|(other, _)| other.overlaps(subnet)) {
            Some((_, what)) => Err(NetError::Overlap {
                subnet: subnet.to_string(),
                other: what.clone(),
            }
            .into()),
            None => Ok(subnet),
        }
    }

    /// Every subnet in use, each with what `subject` may be told it is: users hear neither
    /// the names of networks they cannot see nor the host's addresses.
    async fn taken_subnets(&self, subject: &Subject) -> Result<Vec<(Subnet, String)>, Error> {
        let rows = self.db(|s| Ok(s.read(store::list_networks)?)).await?;
        let mut taken = Vec::new();
        for row in &rows {
            let what = match sees(subject, row) {
                true => format!("network {}", row.name),
                false => "another network".into(),
            };
            taken.push((spec_of(row)?.subnet, what));
        }
        let host = self.hostnet.host_subnets().await;
        // Already network addresses (`HostNet::host_subnets` masks them).
        for (network, prefix) in host.map_err(NetError::Unavailable)? {
            let what = match subject.is_admin() {
                true => format!("the host's {network}/{prefix}"),
                false => "an address or route of the host".into(),
            };
            taken.push((Subnet { network, prefix }, what));
        }
        Ok(taken)
    }

    /// `net.list`: shared networks and the caller's own (admins: all).
    pub async fn list_networks(&self, subject: &Subject) -> Result<Vec<Network>, Error> {
        let rows = self.db(move |s| Ok(s.read(store::list_networks)?)).await?;
        let mut out = Vec::new();
        for row in rows {
            if sees(subject, &row) {
                out.push(self.network_view(subject, row).await?);
            }
        }
        Ok(out)
    }

    /// `net.get`.
    pub async fn get_network(&self, subject: &Subject, name: &str) -> Result<Network, Error> {
        let row = self.network_for(subject, name, Action::Read).await?;
        self.network_view(subject, row).await
    }

    /// `net.remove`.
    pub async fn remove_network(&self, subject: &Subject, name: &str) -> Result<(), Error> {
        self.network_for(subject, name, Action::Modify).await?;
        let _guard = self.lock("net", name, "remove").await?;
        let _all = self.lock("net", "", "remove").await?;
        let row = self.network_for(subject, name, Action::Modify).await?;
        let id = row.id;
        let users = self
            .db(move |s| Ok(s.read(|c| store::nics_on_network(c, id))?))
            .await?;
        if !users.is_empty() {
            return Err(self.in_use(subject, &row, users).into());
        }
        let spec = spec_of(&row)?;
        self.forget_spec(id);
        if let Err(source) = self.hostnet.remove(&spec, &self.specs()).await {
            self.remember_spec(spec);
            return Err(NetError::Host {
                name: row.name,
                source,
            }
            .into());
        }
        self.db(move |s| Ok(s.with_tx_retry(|tx| store::delete_network(tx, id))?))
            .await?;
        tracing::info!(network = %name, user = %subject.name, "network removed");
        Ok(())
    }

    /// The in-use refusal, naming only the VMs the caller may see.
    fn in_use(&self, subject: &Subject, row: &NetworkRow, nics: Vec<NicRow>) -> NetError {
        let mut users: Vec<String> = nics
            .into_iter()
            .map(|n| match subject.is_admin() || subject.owns(n.vm_owner) {
                true => n.vm_name,
                false => "another user's vm".into(),
            })
            .collect();
        users.dedup();
        NetError::InUse {
            name: row.name.clone(),
            users,
        }
    }

    /// Network `name` if `subject` may take `action` on it.
    pub(super) async fn network_for(
        &self,
        subject: &Subject,
        name: &str,
        action: Action,
    ) -> Result<NetworkRow, Error> {
        let row = self.find_network(name).await?;
        let row = row.ok_or_else(|| NetError::NotFound(name.into()))?;
        allow(subject, action, net_object(&row), || {
            NetError::NotFound(name.into()).into()
        })?;
        Ok(row)
    }

    pub(super) async fn find_network(&self, name: &str) -> Result<Option<NetworkRow>, Error> {
        let name = name.to_string();
        self.db(move |s| Ok(s.read(|c| store::get_network(c, &name))?))
            .await
    }

    async fn network_view(&self, subject: &Subject, row: NetworkRow) -> Result<Network, Error> {
        let id = row.id;
        let nics = self
            .db(move |s| Ok(s.read(|c| store::nics_on_network(c, id))?))
            .await?;
        let nics: Vec<NicRow> = nics
            .into_iter()
            .filter(|n| subject.is_admin() || subject.owns(n.vm_owner))
            .collect();
        let spec = spec_of(&row)?;
        let leases = match spec.dhcp {
            true => self.hostnet.leases(&spec),
            false => Vec::new(),
        };
        let lease_of = |mac: &str| leases.iter().find(|l| l.mac == mac);
        let members = nics
            .iter()
            .map(|n| NetworkMember {
                vm: n.vm_name.clone(),
                mac: n.mac.clone(),
                ip: lease_of(&n.mac).map(|l| l.ip.to_string()),
            })
            .collect();
        let leases = leases
            .iter()
            .filter_map(|l| {
                let vm = nics
                    .iter()
                    .find(|n| n.mac == l.mac)
                    .map(|n| n.vm_name.clone());
                (vm.is_some() || subject.is_admin()).then(|| lease_view(l, vm))
            })
            .collect();
        Ok(Network {
            bridge: subject.is_admin().then(|| spec.bridge()),
            gateway: spec.gateway().map(|g| g.to_string()),
            name: row.name,
            owner: row.owner.name,
            shared: row.shared,
            subnet: row.subnet,
            dhcp: row.dhcp,
            nat: row.nat,
            created_at: rfc3339(row.created_at),
            members,
            leases,
        })
    }
}

fn lease_view(lease: &LeaseEntry, vm: Option<String>) -> Lease {
    Lease {
        mac: lease.mac.clone(),
        ip: lease.ip.to_string(),
        hostname: lease.hostname.clone(),
        expires_at: rfc3339(lease.expires_at),
        vm,
    }
}

/// The first /24 of `pool` that overlaps nothing in `taken`.
fn free_slice(pool: Subnet, taken: &[(Subnet, String)]) -> Option<Subnet> {
    let prefix = pool.prefix.max(24);
    let step = 1u32 << (32 - u32::from(prefix));
    let start = u32::from(pool.network);
    let count = 1u32 << (u32::from(prefix) - u32::from(pool.prefix));
    (0..count)
        .map(|i| Subnet {
            network: Ipv4Addr::from(start + i * step),
            prefix,
        })
        .find(|candidate| !taken.iter().any(|(t, _)| t.overlaps(*candidate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_slices_skip_what_is_taken() {
        let pool = Subnet::parse("10.213.0.0/16").expect("pool");
        let taken = vec![
            (Subnet::parse("10.213.0.0/24").expect("a"), "a".into()),
            (Subnet::parse("10.213.1.0/25").expect("b"), "b".into()),
        ];
        assert_eq!(
            free_slice(pool, &taken).map(|s| s.to_string()).as_deref(),
            Some("10.213.2.0/24")
        );
        let all = vec![(pool, "all".into())];
        assert_eq!(free_slice(pool, &all), None);
        let tiny = Subnet::parse("10.9.9.0/28").expect("tiny");
        assert_eq!(free_slice(tiny, &[]), Some(tiny));
    }
}
