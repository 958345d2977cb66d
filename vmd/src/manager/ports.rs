//! Port forwards on the user-mode NIC: `vm.port_add|port_list|port_remove` and the
//! `ssh_port` shortcut of `vm.create` (a TCP forward from 127.0.0.1 to guest port 22).
//!
//! A forward is checked (ports, an address the config allows, privileged ports for admins,
//! the host port free among all VMs' forwards), then, while the VM has a process, applied
//! over QMP first: when QEMU cannot bind the port nothing is stored. The row is written
//! after; if writing fails the live rule is taken back. A stopped VM gets its forwards on
//! its QEMU command line at the next start.

use std::net::Ipv4Addr;

use vm_proto::types::{PortAdd, PortForward, PortRemove, Protocol, Vm, PORTS_MAX};

use super::access::{allow, vm_object};
use super::net_error::NetError;
use super::{Error, Manager};
use crate::auth::policy::Action;
use crate::auth::Subject;
use crate::qemu::netargs::{hostfwd_add, hostfwd_remove};
use crate::store::{self, VmRow};

/// The address forwards listen on unless the request names another.
const LOOPBACK: &str = "127.0.0.1";

/// The forward `vm.create`'s `ssh_port` stands for.
pub(super) fn ssh_forward(port: u16) -> PortForward {
    PortForward {
        protocol: Protocol::Tcp,
        host_address: LOOPBACK.into(),
        host_port: port,
        guest_port: 22,
    }
}

impl Manager {
    /// `vm.port_add`.
    pub async fn add_port(&self, subject: &Subject, req: PortAdd) -> Result<Vm, Error> {
        let (_guard, row) = self
            .lock_vm_for(subject, &req.vm, Action::Modify, "add a port forward")
            .await?;
        let port = self.check_port(subject, &row, &req)?;
        self.check_port_free(subject, &port).await?;
        let live = self.runtime(&row.name);
        if let Some(rt) = &live {
            apply(&rt.qmp, &hostfwd_add(&port), port.host_port).await?;
        }
        let (vm_id, stored) = (row.id, port.clone());
        let saved = self
            .db(move |s| Ok(s.with_tx(|tx| store::insert_port(tx, vm_id, &stored))?))
            .await;
        if let Err(err) = saved {
            if let Some(rt) = &live {
                let undo = hostfwd_remove(port.protocol, &port.host_address, port.host_port);
                let _ = rt.qmp.hmp(&undo).await;
            }
            return Err(err);
        }
        tracing::info!(vm = %req.vm, rule = %crate::qemu::netargs::rule(&port), "port forward added");
        self.get_vm(subject, &req.vm).await
    }

    /// `vm.port_list`.
    pub async fn list_ports(&self, subject: &Subject, vm: &str) -> Result<Vec<PortForward>, Error> {
        Ok(self.vm_for(subject, vm, Action::Read).await?.ports)
    }

    /// `vm.port_remove`.
    pub async fn remove_port(&self, subject: &Subject, req: PortRemove) -> Result<Vm, Error> {
        let (_guard, row) = self
            .lock_vm_for(subject, &req.vm, Action::Modify, "remove a port forward")
            .await?;
        let no_port = || NetError::NoPort {
            vm: req.vm.clone(),
            protocol: req.protocol,
            port: req.host_port,
        };
        let port = row
            .ports
            .iter()
            .find(|p| p.protocol == req.protocol && p.host_port == req.host_port)
            .cloned()
            .ok_or_else(no_port)?;
        // Live first: a forward QEMU still holds is never missing from the store.
        if let Some(rt) = self.runtime(&row.name) {
            let command = hostfwd_remove(port.protocol, &port.host_address, port.host_port);
            let out = rt.qmp.hmp(&command).await.map_err(|e| NetError::Bind {
                port: port.host_port,
                reason: e.to_string(),
            })?;
            if !removed_or_absent(&out) {
                let reason = out;
                return Err(NetError::Bind {
                    port: port.host_port,
                    reason,
                }
                .into());
            }
        }
        let (vm_id, protocol, host_port) = (row.id, req.protocol, req.host_port);
        let removed = self
            .db(move |s| Ok(s.with_tx(|tx| store::delete_port(tx, vm_id, protocol, host_port))?))
            .await?;
        if !removed {
            return Err(no_port().into());
        }
        tracing::info!(vm = %req.vm, rule = %crate::qemu::netargs::rule(&port), "port forward removed");
        self.get_vm(subject, &req.vm).await
    }

    /// The forward `req` asks for, checked against the VM and the caller.
    fn check_port(
        &self,
        subject: &Subject,
        row: &VmRow,
        req: &PortAdd,
    ) -> Result<PortForward, Error> {
        check_forward(
            subject,
            &row.name,
            row.user_net,
            req.host_port,
            req.guest_port,
        )?;
        if row.ports.len() >= PORTS_MAX {
            return Err(NetError::Port(format!(
                "vm {} has {PORTS_MAX} port forwards, the most a vm may have",
                row.name
            ))
            .into());
        }
        let address = req.host_address.clone().unwrap_or_else(|| LOOPBACK.into());
        self.check_address(&address)?;
        Ok(PortForward {
            protocol: req.protocol,
            host_address: address,
            host_port: req.host_port,
            guest_port: req.guest_port,
        })
    }

    /// Forwards listen on loopback unless the config allows the address.
    fn check_address(&self, address: &str) -> Result<(), Error> {
        let parsed: Ipv4Addr = address.parse().map_err(|_| {
            NetError::Port(format!("host address {address:?} is not an IPv4 address"))
        })?;
        let allowed = parsed == Ipv4Addr::LOCALHOST
            || self
                .config
                .net
                .port_forward_addresses
                .iter()
                .any(|a| a == address);
        match allowed {
            true => Ok(()),
            false => Err(NetError::Port(format!(
                "host address {address} is not allowed for port forwards (the config's [network] port_forward_addresses lists the allowed ones besides 127.0.0.1)"
            ))
            .into()),
        }
    }

    /// The host port is not forwarded by any VM; the holder is named only to those who may
    /// see it.
    pub(super) async fn check_port_free(
        &self,
        subject: &Subject,
        port: &PortForward,
    ) -> Result<(), Error> {
        let (protocol, number) = (port.protocol, port.host_port);
        let user = self
            .db(move |s| Ok(s.read(|c| store::port_user(c, protocol, number))?))
            .await?;
        let Some(vm) = user else { return Ok(()) };
        let visible = match self.find_vm(&vm).await? {
            Some(row) => allow(subject, Action::Read, vm_object(&row), || {
                Error::VmNotFound(vm.clone())
            })
            .is_ok(),
            None => false,
        };
        let holder = if visible {
            format!("vm {vm}")
        } else {
            "another user's vm".into()
        };
        Err(NetError::PortTaken {
            protocol: protocol.as_str(),
            port: number,
            holder,
        }
        .into())
    }
}

/// What every forward must meet, on `vm.port_add` and as `vm.create`'s `ssh_port`: the VM
/// has its user-mode NIC, ports are 1 to 65535, and host ports below 1024 are for admins.
pub(super) fn check_forward(
    subject: &Subject,
    vm: &str,
    user_net: bool,
    host_port: u16,
    guest_port: u16,
) -> Result<(), Error> {
    if !user_net {
        return Err(NetError::NoUserNet(vm.to_string()).into());
    }
    if host_port == 0 || guest_port == 0 {
        return Err(NetError::Port("ports must be between 1 and 65535".into()).into());
    }
    if host_port < 1024 && !subject.is_admin() {
        return Err(NetError::PrivilegedPort(host_port).into());
    }
    Ok(())
}

/// Whether HMP's answer to `hostfwd_remove` says the rule is gone ("host forwarding rule
/// for tcp:127.0.0.1:8080 removed", or "… not found" when QEMU did not have it).
fn removed_or_absent(out: &str) -> bool {
    out.ends_with("removed") || out.ends_with("not found")
}

/// Runs an HMP port command; HMP reports failure as output text.
async fn apply(qmp: &crate::qemu::qmp::Qmp, command: &str, port: u16) -> Result<(), Error> {
    let out = qmp.hmp(command).await.map_err(|e| NetError::Bind {
        port,
        reason: e.to_string(),
    })?;
    match out.is_empty() {
        true => Ok(()),
        false => Err(NetError::Bind { port, reason: out }.into()),
    }
}
