//! PLACEHOLDER replaced by the hostnet branch (interface only, for compiling the manager).
#![allow(missing_docs, unused_variables, clippy::todo)]

use std::net::Ipv4Addr;
use std::path::PathBuf;

use vm_proto::types::Subnet;

#[derive(Debug, Clone)]
pub struct NetSpec {
    pub id: i64,
    pub name: String,
    pub subnet: Subnet,
    pub dhcp: bool,
    pub nat: bool,
}

impl NetSpec {
    pub fn bridge(&self) -> String {
        format!("vmdbr{}", self.id)
    }
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        (self.dhcp || self.nat).then(|| self.subnet.gateway())
    }
}

pub fn tap_name(vm_id: i64, position: i64) -> String {
    format!("vmd{vm_id}n{position}")
}

#[derive(Debug, Clone)]
pub struct LeaseEntry {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum HostNetError {
    #[error("not capable: {0}")]
    NotCapable(String),
    #[error("failed: {0}")]
    Failed(String),
}

#[derive(Debug)]
pub struct HostNet {
    dir: PathBuf,
}

impl HostNet {
    pub fn new(dir: PathBuf) -> HostNet {
        HostNet { dir }
    }
    pub fn check_capable(&self, needs_dhcp: bool) -> Result<(), HostNetError> {
        todo!()
    }
    pub async fn host_subnets(&self) -> Result<Vec<(Ipv4Addr, u8)>, HostNetError> {
        todo!()
    }
    pub async fn ensure(&self, net: &NetSpec, all: &[NetSpec]) -> Result<(), HostNetError> {
        todo!()
    }
    pub async fn remove(&self, net: &NetSpec, remaining: &[NetSpec]) -> Result<(), HostNetError> {
        todo!()
    }
    pub async fn attach_tap(&self, tap: &str, net: &NetSpec) -> Result<(), HostNetError> {
        todo!()
    }
    pub async fn ensure_dnsmasq(&self, net: &NetSpec) -> Result<bool, HostNetError> {
        todo!()
    }
    pub fn leases(&self, net: &NetSpec) -> Vec<LeaseEntry> {
        todo!()
    }
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>, HostNetError> {
        todo!()
    }
}
