//! NICs on lab networks: `vm.nic_add|nic_remove` (stopped VMs only), the NICs of `vm.create`,
//! fresh MACs, the taps of a starting VM, and the host side kept alive: start-up restore and
//! the dnsmasq supervisor.
//!
//! MACs are locally administered unicast addresses with the prefix `02:6c:61` ("la", for lab; bridges use `02:76:6d`) and
//! three random bytes, unique among all NICs (the store refuses a duplicate and a new one
//! is drawn). A NIC's tap is `vmd<vm id>n<position>`; QEMU creates it at start and it goes
//! with the process, so a stopped or removed VM leaves no tap behind.

use std::collections::BTreeSet;

use vm_proto::types::{Nic, NicChange, PortForward, Vm, VmCreate, NICS_MAX};

use super::net_error::NetError;
use super::networks::spec_of;
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::hostnet::{tap_name, NetSpec};
use crate::qemu::netargs::TapNic;
use crate::store::{self, NicRow, VmRow};

/// How often the supervisor looks at the dnsmasq processes.
const SUPERVISE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// A fresh random locally administered MAC.
pub(super) fn random_mac() -> Result<String, Error> {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Invalid(format!("no randomness for a MAC address: {e}")))?;
    Ok(format!(
        "02:6c:61:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2]
    ))
}

/// How many random MACs a new NIC may draw before the store takes one (each draw collides
/// with probability NICs / 2^24).
const MAC_DRAWS: usize = 16;

/// Adds NICs on `networks` (ids, in order) to VM `vm_id`, inside the caller's transaction.
pub(super) fn insert_nics(
    tx: &rusqlite::Connection,
    vm_id: i64,
    networks: &[i64],
) -> Result<(), Error> {
    for &network in networks {
        let mut placed = false;
        for _ in 0..MAC_DRAWS {
            if store::insert_nic(tx, vm_id, network, &random_mac()?)? {
                placed = true;
                break;
            }
        }
        if !placed {
            return Err(Error::Invalid(format!(
                "no free MAC address found in {MAC_DRAWS} draws"
            )));
        }
    }
    Ok(())
}

impl Manager {
    /// The network ids for `vm.create`'s `networks`: each usable by `subject`, none twice,
    /// at most [`NICS_MAX`].
    pub(super) async fn plan_nics(
        &self,
        subject: &Subject,
        names: &[String],
    ) -> Result<Vec<i64>, Error> {
        if names.len() > NICS_MAX {
            return Err(NetError::Nics(format!(
                "a vm may have at most {NICS_MAX} NICs on lab networks"
            ))
            .into());
        }
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for name in names {
            if !seen.insert(name) {
                return Err(NetError::Nics(format!("network {name} is named twice")).into());
            }
            ids.push(self.network_for(subject, name, Action::Use).await?.id);
        }
        Ok(ids)
    }

    /// Locks networks `names` (sorted, so two callers never wait on each other in a cycle).
    pub(super) async fn lock_networks(
        &self,
        names: &[String],
        operation: &'static str,
    ) -> Result<Vec<super::locks::NameGuard>, Error> {
        let sorted: BTreeSet<&String> = names.iter().collect();
        let mut guards = Vec::new();
        for name in sorted {
            guards.push(self.lock("net", name, operation).await?);
        }
        Ok(guards)
    }

    /// `vm.nic_add`.
    pub async fn add_nic(&self, subject: &Subject, req: NicChange) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, &req.vm, Action::Modify, "add a nic")
            .await?;
        self.network_for(subject, &req.network, Action::Use).await?;
        let _net_guard = self.lock("net", &req.network, "add a nic").await?;
        // Again under the lock: the name may have been removed and taken meanwhile.
        let net = self.network_for(subject, &req.network, Action::Use).await?;
        let row = self.stopped_vm(&req.vm, "add a nic").await?;
        super::clones::check_not_pending(&row, "get a NIC")?;
        if row.nics.iter().any(|n| n.network_id == net.id) {
            return Err(NetError::NicExists {
                vm: req.vm,
                network: req.network,
            }
            .into());
        }
        if row.nics.len() >= NICS_MAX {
            return Err(NetError::Nics(format!(
                "vm {} has {NICS_MAX} NICs, the most a vm may have",
                req.vm
            ))
            .into());
        }
        let (vm_id, net_id) = (row.id, net.id);
        self.db(move |s| s.with_tx(|tx| insert_nics(tx, vm_id, &[net_id])))
            .await?;
        tracing::info!(vm = %req.vm, network = %req.network, "nic added");
        self.get_vm(subject, &req.vm).await
    }

    /// `vm.nic_remove`.
    pub async fn remove_nic(&self, subject: &Subject, req: NicChange) -> Result<Vm, Error> {
        let (_guard, _) = self
            .lock_vm_for(subject, &req.vm, Action::Modify, "remove a nic")
            .await?;
        let row = self.stopped_vm(&req.vm, "remove a nic").await?;
        let no_nic = || NetError::NoNic {
            vm: req.vm.clone(),
            network: req.network.clone(),
        };
        let nic = row
            .nics
            .iter()
            .find(|n| n.network_name == req.network)
            .ok_or_else(no_nic)?;
        let (vm_id, net_id) = (row.id, nic.network_id);
        let removed = self
            .db(move |s| Ok(s.with_tx(|tx| store::delete_nic(tx, vm_id, net_id))?))
            .await?;
        if !removed {
            return Err(no_nic().into());
        }
        tracing::info!(vm = %req.vm, network = %req.network, "nic removed");
        self.get_vm(subject, &req.vm).await
    }

    /// The taps of a VM about to start; its networks must be up on the host.
    pub(super) fn taps_of(&self, row: &VmRow) -> Vec<TapNic> {
        row.nics
            .iter()
            .map(|n| TapNic {
                tap: tap_name(row.id, n.position),
                mac: n.mac.clone(),
            })
            .collect()
    }

    /// Joins a started (paused) VM's taps to their bridges.
    pub(super) async fn attach_taps(&self, row: &VmRow) -> Result<(), String> {
        for nic in &row.nics {
            let spec = self
                .spec(nic.network_id)
                .ok_or_else(|| format!("network {} is not set up on the host", nic.network_name))?;
            let tap = tap_name(row.id, nic.position);
            self.hostnet
                .attach_tap(&tap, &spec)
                .await
                .map_err(|e| format!("cannot attach {tap} to network {}: {e}", nic.network_name))?;
        }
        Ok(())
    }

    /// The NICs as a VM shows them, with the address each one's lease gives.
    pub(super) fn nic_views(&self, row: &VmRow) -> Vec<Nic> {
        row.nics
            .iter()
            .map(|n| Nic {
                network: n.network_name.clone(),
                mac: n.mac.clone(),
                ip: self.lease_ip(n),
                tap: row.runtime.is_some().then(|| tap_name(row.id, n.position)),
            })
            .collect()
    }

    fn lease_ip(&self, nic: &NicRow) -> Option<String> {
        let spec = self.spec(nic.network_id).filter(|s| s.dhcp)?;
        self.hostnet
            .leases(&spec)
            .into_iter()
            .find(|l| l.mac == nic.mac)
            .map(|l| l.ip.to_string())
    }

    /// Start-up: every stored network up again on the host and running guests' taps on their
    /// bridges. A network that cannot be brought up is reported, not fatal.
    pub async fn restore_networks(&self) -> Result<(), Error> {
        let rows = self.db(|s| Ok(s.read(store::list_networks)?)).await?;
        for row in &rows {
            self.remember_spec(spec_of(row)?);
        }
        if let Err(err) = self.hostnet.check_capable(rows.iter().any(|r| r.dhcp)) {
            if !rows.is_empty() {
                tracing::warn!(cause = %err, "lab networks cannot be restored");
            }
            return Ok(());
        }
        let all = self.specs();
        self.remove_stale_networks(&all).await;
        // One table for all networks, loaded before any bridge gets its address.
        if let Err(err) = self.hostnet.apply_rules(&all).await {
            tracing::warn!(cause = %err, "cannot load the rules of lab networks");
            return Ok(());
        }
        for spec in &all {
            if let Err(err) = self.hostnet.ensure_links(spec).await {
                tracing::warn!(network = %spec.name, cause = %err, "cannot restore network");
            }
        }
        self.reattach_running().await
    }

    /// Host leftovers of networks removed while vmd was down (or half-created when it died).
    async fn remove_stale_networks(&self, all: &[NetSpec]) {
        let stale = match self.hostnet.stale_ids(all).await {
            Ok(ids) => ids,
            Err(err) => return tracing::warn!(cause = %err, "cannot look for stale networks"),
        };
        for id in stale {
            match self.hostnet.remove_stale(id, all).await {
                Ok(()) => {
                    tracing::info!(id, "removed the leftovers of a network vmd no longer has")
                }
                Err(err) => tracing::warn!(id, cause = %err, "cannot remove a stale network"),
            }
        }
    }

    async fn reattach_running(&self) -> Result<(), Error> {
        let vms = self
            .db(|s| Ok(s.read(|c| store::list_vms(c, None))?))
            .await?;
        for vm in vms
            .iter()
            .filter(|v| v.runtime.is_some() && !v.nics.is_empty())
        {
            if let Err(why) = self.attach_taps(vm).await {
                tracing::warn!(vm = %vm.name, cause = %why, "cannot re-attach taps");
                continue;
            }
            self.release_if_prelaunch(vm).await;
        }
        Ok(())
    }

    /// A VM whose start vmd did not finish (killed between attaching its taps and letting
    /// it run) is still paused before its first instruction: let it run now.
    async fn release_if_prelaunch(&self, vm: &VmRow) {
        let Some(rt) = self.runtime(&vm.name) else {
            return;
        };
        if let Ok(status) = rt.qmp.query_status().await {
            if status.status == crate::qemu::qmp::RunState::Prelaunch {
                match rt.qmp.cont().await {
                    Ok(()) => {
                        tracing::info!(vm = %vm.name, "let an adopted vm run that was left before its first instruction")
                    }
                    Err(err) => {
                        tracing::warn!(vm = %vm.name, cause = %err, "cannot let an adopted vm run")
                    }
                }
            }
        }
    }

    /// Restarts dead dnsmasq processes every few seconds, until `shutdown`.
    pub fn spawn_network_supervisor(
        self: &std::sync::Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SUPERVISE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => me.supervise_once().await,
                }
            }
        })
    }

    async fn supervise_once(&self) {
        let specs = self.specs();
        match self.hostnet.ensure_rules(&specs).await {
            Ok(true) => tracing::warn!("the nftables table of lab networks was gone: loaded again"),
            Ok(false) => {}
            Err(err) => tracing::warn!(cause = %err, "cannot check the nftables table"),
        }
        for spec in specs.iter().filter(|s| s.dhcp) {
            match self.hostnet.ensure_dnsmasq(spec).await {
                Ok(true) => tracing::info!(network = %spec.name, "dnsmasq restarted"),
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(network = %spec.name, cause = %err, "cannot restart dnsmasq")
                }
            }
        }
    }

    /// The host-side view of network `id`, if it is known.
    pub(super) fn spec(&self, id: i64) -> Option<NetSpec> {
        self.nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every known network.
    pub(super) fn specs(&self) -> Vec<NetSpec> {
        let nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<NetSpec> = nets.values().cloned().collect();
        all.sort_by_key(|s| s.id);
        all
    }

    pub(super) fn remember_spec(&self, spec: NetSpec) {
        self.nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.id, spec);
    }

    pub(super) fn forget_spec(&self, id: i64) {
        self.nets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// The NICs (network ids, in order) and port forwards of a VM being created.
pub(super) struct Links {
    networks: Vec<i64>,
    ports: Vec<PortForward>,
}

impl Links {
    /// Stores them for VM `id`, inside the creating transaction; a host port taken since
    /// the check loses here.
    pub(super) fn insert(&self, tx: &rusqlite::Connection, id: i64) -> Result<(), Error> {
        insert_nics(tx, id, &self.networks)?;
        for port in &self.ports {
            if store::port_user(tx, port.protocol, port.host_port)?.is_some() {
                return Err(NetError::PortTaken {
                    protocol: port.protocol.as_str(),
                    port: port.host_port,
                    holder: "another vm".into(),
                }
                .into());
            }
            store::insert_port(tx, id, port)?;
        }
        Ok(())
    }
}

impl Manager {
    /// The NICs and the ssh forward `req` asks for, checked.
    pub(super) async fn plan_links(
        &self,
        subject: &Subject,
        req: &VmCreate,
    ) -> Result<Links, Error> {
        let networks = self.plan_nics(subject, &req.networks).await?;
        let ports = match req.ssh_port {
            None => Vec::new(),
            Some(port) => {
                super::ports::check_forward(subject, &req.name, !req.no_user_net, port, 22)?;
                let forward = super::ports::ssh_forward(port);
                self.check_port_free(subject, &forward).await?;
                vec![forward]
            }
        };
        Ok(Links { networks, ports })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_locally_administered_and_vary() {
        let a = random_mac().expect("mac");
        assert!(vm_proto::types::is_mac(&a), "{a}");
        let first = u8::from_str_radix(&a[..2], 16).expect("hex");
        assert_eq!(first & 0b11, 0b10, "locally administered unicast");
        assert!(
            (0..8)
                .map(|_| random_mac().expect("mac"))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        );
    }
}
