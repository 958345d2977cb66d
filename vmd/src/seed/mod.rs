//! cloud-init NoCloud seeds: the documents a VM's seed carries and the read-only ISO that
//! carries them (see `docs/provisioning.md`).
//!
//! A seed is an ISO 9660 image labelled `cidata` with `meta-data` (the per-VM `instance-id`
//! and `local-hostname`), `user-data` and no `network-config` (cloud-init's fallback, DHCP on
//! the first NIC, is what vmd's user-mode NIC needs). It is built by `xorriso` at every start
//! in the VM's private run directory from the stored settings, so it always matches them and
//! nothing stale survives a wipe. Why an ISO rather than a vfat image: it is read-only by
//! construction, it is what `cloud-localds` makes by default, and as a CD-ROM every guest OS
//! reads it without virtio drivers.
//!
//! Everything vmd writes into YAML documents is emitted as JSON (a subset of YAML), so no
//! value (a key comment, a user name) can change the document's structure. The owner's own
//! user-data is checked ([`check_user_data`]) and combined with vmd's part in a MIME
//! multi-part document, vmd's part first.

mod iso;

pub use iso::{build, SeedError};

use serde_json::json;
use vm_proto::types::user_data_kind;

/// What one VM's seed says.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed {
    /// The guest's hostname (the VM name).
    pub hostname: String,
    /// `instance-id`.
    pub instance_id: String,
    /// The account created.
    pub user: String,
    /// Its SSH public keys.
    pub ssh_keys: Vec<String>,
    /// Its password as a SHA-512 crypt hash.
    pub password_hash: Option<String>,
    /// The owner's own user-data.
    pub user_data: Option<String>,
}

impl Seed {
    /// The `meta-data` document.
    pub fn meta_data(&self) -> String {
        let doc = json!({
            "instance-id": self.instance_id,
            "local-hostname": self.hostname,
        });
        format!("{doc}\n")
    }

    /// The `user-data` document: vmd's `#cloud-config` alone, or a MIME multi-part document
    /// with the owner's user-data after it.
    pub fn user_data(&self) -> String {
        let ours = format!("#cloud-config\n{}\n", self.cloud_config());
        match &self.user_data {
            None => ours,
            Some(theirs) => multipart(&ours, theirs),
        }
    }

    /// vmd's cloud-config: the account with sudo, its keys and password, the hostname, SSH
    /// by key only, and the root file system grown to the disk.
    fn cloud_config(&self) -> serde_json::Value {
        let mut user = json!({
            "name": self.user,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": self.password_hash.is_none(),
            "ssh_authorized_keys": self.ssh_keys,
        });
        if let Some(hash) = &self.password_hash {
            user["passwd"] = json!(hash);
        }
        json!({
            "users": [user],
            "hostname": self.hostname,
            "preserve_hostname": false,
            "ssh_pwauth": false,
            "growpart": {"mode": "auto", "devices": ["/"]},
            "resize_rootfs": true,
        })
    }
}

/// A MIME multi-part user-data document of `ours` (a cloud-config) and `theirs`.
fn multipart(ours: &str, theirs: &str) -> String {
    let boundary = boundary_for(theirs);
    let theirs_type = match user_data_kind(theirs) {
        Ok("script") => "text/x-shellscript",
        _ => "text/cloud-config",
    };
    let part = |kind: &str, body: &str| {
        format!(
            "--{boundary}\r\nContent-Type: {kind}; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n\
             Content-Disposition: attachment\r\n\r\n{body}\r\n"
        )
    };
    format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\nMIME-Version: 1.0\r\n\r\n{}{}--{boundary}--\r\n",
        part("text/cloud-config", ours),
        part(theirs_type, theirs)
    )
}

/// A MIME boundary that does not occur in `text`.
fn boundary_for(text: &str) -> String {
    (0u32..)
        .map(|n| format!("==vmd-seed-{n:08x}=="))
        .find(|b| !text.contains(b.as_str()))
        .unwrap_or_default()
}

/// Deepest nesting accepted in an owner's cloud-config.
const YAML_DEPTH_MAX: usize = 64;

/// Checks an owner's user-data: the first line says its kind ([`user_data_kind`]), and a
/// cloud-config is one YAML document whose top is a mapping. The YAML is read as events, so
/// aliases are never expanded (no "billion laughs") and nesting is bounded.
pub fn check_user_data(data: &str) -> Result<(), String> {
    if user_data_kind(data)? != "cloud-config" {
        return Ok(());
    }
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(data);
    let (mut depth, mut documents, mut top) = (0usize, 0usize, None);
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|e| format!("user-data is not valid YAML: {e}"))?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart => documents += 1,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                top.get_or_insert(matches!(event, Event::MappingStart(..)));
                depth += 1;
                if depth > YAML_DEPTH_MAX {
                    return Err(format!(
                        "user-data nests deeper than {YAML_DEPTH_MAX} levels (line {})",
                        mark.line()
                    ));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::Scalar(..) | Event::Alias(..) => {
                top.get_or_insert(false);
            }
            _ => {}
        }
    }
    if documents > 1 {
        return Err("user-data holds several YAML documents; cloud-init reads one".into());
    }
    match top {
        Some(false) => Err("user-data's top level must be a mapping (`key: value` lines)".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
