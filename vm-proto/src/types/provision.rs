//! Guest provisioning: the cloud-init options of `vm.create`, what a VM shows of them, labels,
//! and what the guest agent reports. The validation rules live here so that vmctl refuses bad
//! input before it connects and vmd applies the same rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most SSH public keys one VM may be given.
pub const SSH_KEYS_MAX: usize = 32;
/// Longest SSH public key line, in bytes (an RSA 16384-bit key is about 2.8 KiB).
pub const SSH_KEY_MAX_BYTES: usize = 8192;
/// Largest user-data a VM may be given, in bytes.
pub const USER_DATA_MAX_BYTES: usize = 256 * 1024;
/// Most labels one VM may carry.
pub const LABELS_MAX: usize = 32;
/// Longest label key or value, in characters.
pub const LABEL_MAX_CHARS: usize = 63;

/// The cloud-init part of `vm.create`: what the VM's NoCloud seed gives the guest. Every field
/// is optional; see `docs/provisioning.md`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloudInitRequest {
    /// `false`: attach no seed, even when the image supports cloud-init. Default `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// OpenSSH public key lines (`ssh-ed25519 AAAA… comment`) for the provisioned user. The
    /// client reads them (vmd never reads a caller's files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// The account cloud-init creates (with sudo). Default: the VM owner's account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A password for that account (console login; SSH stays key-only). vmd stores only its
    /// SHA-512 crypt hash, which is what the guest receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The caller's own user-data: `#cloud-config` YAML or a `#!` script, at most
    /// [`USER_DATA_MAX_BYTES`]. vmd's part (user, keys) is combined with it in one MIME
    /// multi-part document, the caller's part last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

impl std::fmt::Debug for CloudInitRequest {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudInitRequest")
            .field("enabled", &self.enabled)
            .field("ssh_keys", &self.ssh_keys.len())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("user_data_bytes", &self.user_data.as_ref().map(String::len))
            .finish()
    }
}

impl Default for CloudInitRequest {
    /// Enabled, nothing given: what an absent `cloud_init` field means.
    fn default() -> Self {
        CloudInitRequest {
            enabled: true,
            ssh_keys: Vec::new(),
            user: None,
            password: None,
            user_data: None,
        }
    }
}

impl CloudInitRequest {
    /// Whether the caller asked for anything the seed carries (then a seed is attached even
    /// when the image does not say it runs cloud-init).
    pub fn asks_for_seed(&self) -> bool {
        self.enabled && self.gives_seed_content()
    }

    /// Checks every field (see the `validate_*` functions); the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled && self.gives_seed_content() {
            return Err(
                "cloud-init is disabled, yet SSH keys, a user, a password or user-data were \
                 given; drop one or the other"
                    .into(),
            );
        }
        if self.ssh_keys.len() > SSH_KEYS_MAX {
            return Err(format!(
                "{} SSH keys given; at most {SSH_KEYS_MAX} are allowed",
                self.ssh_keys.len()
            ));
        }
        self.ssh_keys
            .iter()
            .try_for_each(|key| validate_ssh_key(key))?;
        if let Some(user) = &self.user {
            validate_guest_user(user)?;
        }
        if let Some(password) = &self.password {
            validate_guest_password(password)?;
        }
        if let Some(data) = &self.user_data {
            user_data_kind(data)?;
        }
        Ok(())
    }

    /// Whether any field a seed carries is given (keys, user, password, user-data).
    fn gives_seed_content(&self) -> bool {
        !self.ssh_keys.is_empty()
            || self.user.is_some()
            || self.password.is_some()
            || self.user_data.is_some()
    }
}

/// What a VM shows of its cloud-init seed (never the password or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CloudInitInfo {
    /// The account cloud-init creates.
    pub user: String,
    /// The SSH public keys given to it (public, so shown as given).
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// Whether that account has a password.
    #[serde(default)]
    pub password: bool,
    /// Whether the VM has its own user-data, and of which kind (`cloud-config`, `script`).
    #[serde(default)]
    pub user_data: Option<String>,
    /// The seed's `instance-id`: a new one (after a wipe) makes cloud-init provision again.
    pub instance_id: String,
}

/// What the guest agent (qemu-guest-agent) reports about a running guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuestInfo {
    /// Whether the agent answered since the VM's QEMU started.
    pub agent: bool,
    /// The guest OS's own name (`PRETTY_NAME` of os-release), if the agent said.
    #[serde(default)]
    pub os: Option<String>,
    /// The guest kernel release, if the agent said.
    #[serde(default)]
    pub kernel: Option<String>,
    /// The guest's hostname, if the agent said.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Addresses of the guest's interfaces (loopback left out).
    #[serde(default)]
    pub addresses: Vec<GuestAddress>,
    /// When the agent last answered, RFC 3339 UTC.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// One IP address of a guest interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuestAddress {
    /// Interface name in the guest (`enp0s2`).
    pub interface: String,
    /// The address (`10.0.2.15`, `fec0::5054:ff:fe12:3456`).
    pub address: String,
    /// Prefix length.
    pub prefix: u8,
    /// The interface's MAC address, if reported.
    #[serde(default)]
    pub mac: Option<String>,
}

/// Labels of a VM: `key → value`, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Checks an SSH public key line: one line of printable ASCII, a known key type, base64 key
/// material, an optional comment; options (`from=…,command=…`) are not accepted.
pub fn validate_ssh_key(key: &str) -> Result<(), String> {
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let bad = |why: &str| {
        Err(format!(
            "invalid SSH public key: {why}; give one line of a .pub file, such as \
             `ssh-ed25519 AAAAC3Nz… you@host`"
        ))
    };
    if key.len() > SSH_KEY_MAX_BYTES {
        return bad(&format!("longer than {SSH_KEY_MAX_BYTES} bytes"));
    }
    if key.chars().any(|c| !(c == ' ' || c.is_ascii_graphic())) {
        return bad("it contains a control or non-ASCII character");
    }
    let mut parts = key.split(' ').filter(|p| !p.is_empty());
    let (Some(kind), Some(material)) = (parts.next(), parts.next()) else {
        return bad("it needs a key type and the key");
    };
    if !TYPES.contains(&kind) {
        return bad(&format!("unknown key type {kind:?}"));
    }
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if material.len() < 16 || !material.chars().all(base64) {
        return bad("the key is not base64");
    }
    Ok(())
}

/// Checks the name of the account cloud-init creates: a portable login name (`a-z`, digits,
/// `_`, `-`, starting with a letter or `_`, at most 32), not `root` nor a Debian system
/// account.
pub fn validate_guest_user(user: &str) -> Result<(), String> {
    const RESERVED: &[&str] = &[
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "nobody",
        "systemd-network",
        "sshd",
        "messagebus",
        "_apt",
    ];
    let first_ok = user
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
    if !first_ok || user.len() > 32 || !user.chars().all(ok_char) {
        return Err(format!(
            "invalid guest user {user:?}: use 1-32 lowercase letters, digits, '_' and '-', \
             starting with a letter or '_'"
        ));
    }
    if RESERVED.contains(&user) {
        return Err(format!(
            "guest user {user:?} is a system account; choose another name"
        ));
    }
    Ok(())
}

/// Checks a guest password: 1 to 256 bytes, no control characters.
pub fn validate_guest_password(password: &str) -> Result<(), String> {
    if password.is_empty() || password.len() > 256 {
        return Err("the guest password must be 1 to 256 bytes long".into());
    }
    if password.chars().any(char::is_control) {
        return Err("the guest password contains a control character".into());
    }
    Ok(())
}

/// The kind of a user-data document: `cloud-config` (first line `#cloud-config`, the rest
/// YAML, checked by vmd) or `script` (first line `#!`). Anything else is refused with a hint.
pub fn user_data_kind(data: &str) -> Result<&'static str, String> {
    if data.len() > USER_DATA_MAX_BYTES {
        return Err(format!(
            "user-data is {} bytes; at most {USER_DATA_MAX_BYTES} are allowed",
            data.len()
        ));
    }
    if data.contains('\0') {
        return Err("user-data contains a NUL byte; it must be text".into());
    }
    let first = data.lines().next().unwrap_or("").trim_end();
    if first == "#cloud-config" {
        Ok("cloud-config")
    } else if first.starts_with("#!") {
        Ok("script")
    } else {
        Err(format!(
            "user-data must start with `#cloud-config` (YAML) or `#!` (a script); it starts \
             with {:?}",
            first.chars().take(40).collect::<String>()
        ))
    }
}

/// Checks a label key: 1 to [`LABEL_MAX_CHARS`] characters of `a-z`, `0-9`, `.`, `_`, `-`
/// and `/`, starting with a letter or digit.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let first_ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
    };
    if !first_ok || key.len() > LABEL_MAX_CHARS || !key.chars().all(ok_char) {
        return Err(format!(
            "invalid label key {key:?}: use 1-{LABEL_MAX_CHARS} lowercase letters, digits, \
             '.', '_', '-' and '/', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value: at most [`LABEL_MAX_CHARS`] characters, no control characters and
/// no `=` or `,` (so `k=v` selectors stay unambiguous). Empty is allowed.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.chars().count() > LABEL_MAX_CHARS {
        return Err(format!(
            "label value {value:?} is longer than {LABEL_MAX_CHARS} characters"
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() || super::vm::is_hidden_format(c) || matches!(c, '=' | ','))
    {
        return Err(format!(
            "label value {value:?} contains a control or invisible character, '=' or ','"
        ));
    }
    Ok(())
}

/// Checks a whole label set (keys, values, count).
pub fn validate_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > LABELS_MAX {
        return Err(format!(
            "{} labels; a VM may carry at most {LABELS_MAX}",
            labels.len()
        ));
    }
    labels.iter().try_for_each(|(k, v)| {
        validate_label_key(k)?;
        validate_label_value(v)
    })
}

/// A label selector of `vm.list`: `key` (the VM has the label) or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    /// The key.
    pub key: String,
    /// The value it must have; `None`: any.
    pub value: Option<String>,
}

impl LabelSelector {
    /// Parses `key` or `key=value`.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        validate_label_key(key)?;
        if let Some(v) = value {
            validate_label_value(v)?;
        }
        Ok(LabelSelector {
            key: key.into(),
            value: value.map(Into::into),
        })
    }

    /// Whether `labels` match.
    pub fn matches(&self, labels: &Labels) -> bool {
        match (&self.value, labels.get(&self.key)) {
            (None, found) => found.is_some(),
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
        }
    }
}

/// Parses `key=value` (a label to set).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("label {text:?} needs the form key=value"));
    };
    validate_label_key(key)?;
    validate_label_value(value)?;
    Ok((key.into(), value.into()))
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2kZ0cZ3bm9tYXJrZXJrZXlrZXlrZXk me@host";

    #[test]
    fn ssh_keys_are_single_plain_lines() {
        assert!(validate_ssh_key(KEY).is_ok());
        assert!(validate_ssh_key("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB").is_ok());
        for bad in [
            "",
            "AAAAC3NzaC1lZDI1NTE5AAAAIBd2",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA",
            "command=\"rm -rf /\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2",
            "ssh-ed25519 not*base64*at*all!",
        ] {
            assert!(validate_ssh_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guest_users_are_portable_non_system_names() {
        assert!(validate_guest_user("lab").is_ok() && validate_guest_user("_x-1").is_ok());
        for bad in [
            "",
            "Root",
            "root",
            "sshd",
            "1abc",
            "a b",
            "a.b",
            &"a".repeat(33),
        ] {
            assert!(validate_guest_user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn user_data_is_cloud_config_or_a_script() {
        assert_eq!(
            user_data_kind("#cloud-config\npackages: []\n"),
            Ok("cloud-config")
        );
        assert_eq!(user_data_kind("#!/bin/sh\necho hi\n"), Ok("script"));
        assert!(user_data_kind("packages: []").is_err());
        assert!(user_data_kind("#cloud-config\n\0").is_err());
        let big = format!("#!/bin/sh\n{}", "x".repeat(USER_DATA_MAX_BYTES));
        assert!(user_data_kind(&big).is_err());
    }

    #[test]
    fn requests_validate_and_never_debug_the_password() {
        let req = CloudInitRequest {
            enabled: true,
            ssh_keys: vec![KEY.into()],
            user: Some("lab".into()),
            password: Some("hunter2".into()),
            user_data: None,
        };
        assert!(req.validate().is_ok() && req.asks_for_seed());
        assert!(!format!("{req:?}").contains("hunter2"));
        let off = CloudInitRequest {
            enabled: false,
            ..req
        };
        assert!(off.validate().is_err());
        let none: CloudInitRequest = serde_json::from_str("{}").expect("valid");
        assert!(none.enabled && !none.asks_for_seed() && none.validate().is_ok());
        assert_eq!(none, CloudInitRequest::default());
        assert!(serde_json::from_str::<CloudInitRequest>(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn labels_and_selectors() {
        assert_eq!(
            parse_label("course=net101"),
            Ok(("course".into(), "net101".into()))
        );
        assert_eq!(parse_label("k="), Ok(("k".into(), String::new())));
        assert!(parse_label("novalue").is_err() && parse_label("Bad=x").is_err());
        assert!(parse_label("k=a,b").is_err() && parse_label("k=a\nb").is_err());
        assert!(parse_label("k=a\u{202E}b").is_err() && parse_label("k=\u{200B}").is_err());
        let labels: Labels = [("course".to_string(), "net101".to_string())].into();
        assert!(LabelSelector::parse("course").expect("ok").matches(&labels));
        assert!(LabelSelector::parse("course=net101")
            .expect("ok")
            .matches(&labels));
        assert!(!LabelSelector::parse("course=net102")
            .expect("ok")
            .matches(&labels));
        assert!(!LabelSelector::parse("team").expect("ok").matches(&labels));
        let many: Labels = (0..=LABELS_MAX)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(validate_labels(&many).is_err());
    }
}
