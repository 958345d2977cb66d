//! Base image types, the upload handshake that precedes an import, and the rules of image
//! descriptions.

use serde::{Deserialize, Serialize};

use super::OsFamily;

/// Longest image description, in characters (it is shown under the name in the OS sidebar).
pub const IMAGE_DESCRIPTION_MAX_CHARS: usize = 200;

/// Result of `PUT /v1/uploads` on the daemon socket: the bytes are staged in daemon-owned
/// storage until `image.import` consumes them (or they expire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Upload {
    /// Token to pass to `image.import`; valid only for the uid that uploaded.
    pub upload_id: String,
    /// Bytes received.
    pub size_bytes: u64,
    /// SHA-256 of the bytes received (the whole file, holes as zeros), lowercase hex; empty
    /// while `sha256_pending`.
    pub sha256: String,
    /// Since 2.5: the digest of a sparse upload is computed after the upload is acknowledged
    /// (hashing gigabytes of holes would hold it up); the imported image or ISO carries it.
    #[serde(default)]
    pub sha256_pending: bool,
}

/// Parameters of `image.import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageImport {
    /// Unique image name (a DNS label).
    pub name: String,
    /// The `upload_id` of a finished upload by the same user.
    pub upload_id: String,
    /// OS family. Default: guessed from `name` ([`OsFamily::guess`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsFamily>,
    /// Free text for people (see [`validate_image_description`]). Default: empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the image runs cloud-init (VMs made from it get a seed). Default: detected
    /// from the image's file systems. Since 2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
}

/// Parameters of `image.set`: the fields to change; absent ones stay. At least one must be
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageSet {
    /// Image name.
    pub name: String,
    /// New OS family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsFamily>,
    /// New description (see [`validate_image_description`]); `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Make it public (`true`: admins only) or private to its owner (`false`: it then counts
    /// against the owner's disk quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// Whether the image runs cloud-init (admins). Since 2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<bool>,
}

impl ImageSet {
    /// Whether the request changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.os.is_none()
            && self.description.is_none()
            && self.public.is_none()
            && self.cloud_init.is_none()
    }
}

/// Checks an image description: at most [`IMAGE_DESCRIPTION_MAX_CHARS`] characters, none of
/// them a control character (newlines and tabs included: it is shown on one line).
pub fn validate_image_description(text: &str) -> Result<(), String> {
    super::vm::check_text(text, IMAGE_DESCRIPTION_MAX_CHARS)
}

/// A base image as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    /// Unique name.
    pub name: String,
    /// Format of the stored base (always `qcow2`).
    pub format: String,
    /// Format the uploaded file had (`qcow2`, `raw`, `vmdk`, `vdi`, `vhdx`, `vpc`).
    pub source_format: String,
    /// Size of the disk as the guest sees it.
    pub virtual_size_bytes: u64,
    /// Bytes the stored base occupies on the host.
    pub disk_usage_bytes: u64,
    /// SHA-256 of the uploaded bytes, lowercase hex (compare with `sha256sum FILE`).
    pub sha256: String,
    /// Name of the account that owns it.
    pub owner: String,
    /// Whether every user may see and use it (`false`: only its owner and admins).
    pub public: bool,
    /// Import time, RFC 3339 UTC.
    pub created_at: String,
    /// Names of the VMs whose overlays this base backs.
    pub used_by: Vec<String>,
    /// Absolute path of the read-only base on the host (daemon-owned; for admins).
    pub path: String,
    /// Whether VMs may use it. `false` while it is being installed by its install VM.
    #[serde(default = "yes")]
    pub sealed: bool,
    /// Firmware VMs made from it get by default.
    #[serde(default)]
    pub firmware: super::Firmware,
    /// Family of the installed OS (what the dashboard's icon shows).
    #[serde(default)]
    pub os: OsFamily,
    /// Free text for people; empty for none.
    #[serde(default)]
    pub description: String,
    /// Whether the image runs cloud-init: VMs made from it get a NoCloud seed (since 2.5).
    #[serde(default)]
    pub cloud_init: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_descriptions_are_short_printable_text() {
        assert!(validate_image_description("").is_ok());
        assert!(validate_image_description("Debian 12 — cloud-init, ünïcode").is_ok());
        let longest = "é".repeat(IMAGE_DESCRIPTION_MAX_CHARS);
        assert!(validate_image_description(&longest).is_ok());
        let long = validate_image_description(&"x".repeat(IMAGE_DESCRIPTION_MAX_CHARS + 1));
        assert!(long.expect_err("refused").contains("at most 200"));
        for bad in ["two\nlines", "tab\there", "bell\u{7}", "nul\0"] {
            let err = validate_image_description(bad).expect_err(bad);
            assert!(err.contains("control character"), "{err}");
        }
    }

    #[test]
    fn older_image_json_decodes_with_defaults() {
        let old = r#"{"name":"b","format":"qcow2","source_format":"raw","virtual_size_bytes":1,
            "disk_usage_bytes":1,"sha256":"","owner":"root","public":true,"created_at":"",
            "used_by":[],"path":"/x"}"#;
        let image: Image = serde_json::from_str(old).expect("valid");
        assert_eq!(
            (image.os, image.description.as_str()),
            (OsFamily::Other, "")
        );
        let set: ImageSet = serde_json::from_str(r#"{"name":"b","os":"debian"}"#).expect("valid");
        assert_eq!(set.os, Some(OsFamily::Debian));
        assert!(!set.is_empty());
        assert!(serde_json::from_str::<ImageSet>(r#"{"name":"b","colour":1}"#).is_err());
    }
}
