//! Tables for base images: the `image ls` list and the `image show` details.

use vm_proto::names::format_size;
use vm_proto::types::Image;

use super::{created, created_short, kv_table, list_table, names, size_exact, yes_no};

/// The `image ls` table: NAME, OS, STATUS, VIRTUAL, ON DISK, VMS (how many use it), OWNER,
/// PUBLIC, CREATED.
/// The firmware, the formats and the description are only in `image show`: with the formats
/// the row of a base installed from an ISO (`installing`, `install→qcow2`) passes 100 columns
/// once its name is over about 10 characters; without them, names up to about 20 fit.
pub fn table(images: &[Image]) -> String {
    let headers = [
        "NAME", "OS", "STATUS", "VIRTUAL", "ON DISK", "VMS", "OWNER", "PUBLIC", "CREATED",
    ];
    list_table(&headers, images.iter().map(row))
}

/// One `image ls` row; VMS is the number of VMs using the image (`image show` names them).
fn row(image: &Image) -> Vec<String> {
    vec![
        image.name.clone(),
        image.os.as_str().to_string(),
        status(image).to_string(),
        format_size(image.virtual_size_bytes),
        format_size(image.disk_usage_bytes),
        image.used_by.len().to_string(),
        image.owner.clone(),
        yes_no(image.public).to_string(),
        created_short(&image.created_at),
    ]
}

/// `ready` when sealed (VMs may use it), `installing` while its install VM owns the disk.
fn status(image: &Image) -> &'static str {
    if image.sealed {
        "ready"
    } else {
        "installing"
    }
}

/// The `image show` table: every field of the image, one per line.
/// The hash is `-` while the image is being installed (the daemon has none yet).
pub fn details(image: &Image) -> String {
    let sha256 = if image.sha256.is_empty() {
        "-".to_string()
    } else {
        image.sha256.clone()
    };
    kv_table(&[
        ("name", image.name.clone()),
        ("os", image.os.as_str().to_string()),
        ("description", or_dash(&image.description)),
        ("status", status(image).to_string()),
        ("format", image.format.clone()),
        ("source format", image.source_format.clone()),
        ("firmware", image.firmware.as_str().to_string()),
        ("cloud-init", yes_no(image.cloud_init).to_string()),
        ("virtual size", size_exact(image.virtual_size_bytes)),
        ("disk usage", size_exact(image.disk_usage_bytes)),
        ("sha256", sha256),
        ("owner", image.owner.clone()),
        ("public", yes_no(image.public).to_string()),
        ("created", created(&image.created_at)),
        ("used by", names(&image.used_by)),
        ("path", image.path.clone()),
    ])
}

/// `text`, or `-` when it is empty.
fn or_dash(text: &str) -> String {
    match text.is_empty() {
        true => "-".to_string(),
        false => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Image {
        Image {
            name: "debian-12".into(),
            format: "qcow2".into(),
            source_format: "raw".into(),
            virtual_size_bytes: 2 << 30,
            disk_usage_bytes: 300 << 20,
            sha256: "ab".repeat(32),
            owner: "admin".into(),
            public: true,
            created_at: "2024-05-01T12:00:00Z".into(),
            used_by: vec!["web1".into(), "web2".into()],
            path: "/var/lib/vmd/images/debian-12.qcow2".into(),
            sealed: true,
            firmware: vm_proto::types::Firmware::Bios,
            os: vm_proto::types::OsFamily::Debian,
            description: "Debian 12 with cloud-init".into(),
            cloud_init: true,
        }
    }

    #[test]
    fn list_has_every_column() {
        let text = table(&[sample()]);
        let header = text.lines().next().expect("header");
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            [
                "NAME", "OS", "STATUS", "VIRTUAL", "ON", "DISK", "VMS", "OWNER", "PUBLIC",
                "CREATED"
            ]
        );
        let row = text.lines().nth(1).expect("row");
        for cell in [
            "debian-12   debian   ready",
            "2 GiB",
            "300 MiB",
            "admin   yes",
        ] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
    }

    #[test]
    fn list_fits_100_columns_while_installing() {
        let installing = Image {
            name: "ubuntu-24-server-base".into(),
            os: vm_proto::types::OsFamily::Opensuse,
            source_format: "install".into(),
            sealed: false,
            virtual_size_bytes: 3 << 29,
            disk_usage_bytes: 1536 << 20,
            created_at: "2020-01-01T00:00:00Z".into(),
            ..sample()
        };
        let text = table(&[sample(), installing]);
        let row = text.lines().nth(2).expect("row");
        assert!(row.contains("opensuse   installing   1.5 GiB"), "{row}");
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn details_show_hash_path_and_users() {
        let text = details(&sample());
        let hash = "ab".repeat(32);
        for cell in [
            hash.as_str(),
            "/var/lib/vmd/images/debian-12.qcow2",
            "web1, web2",
            "raw",
            "status          ready",
            "os              debian",
            "description     Debian 12 with cloud-init",
            "firmware        bios",
            "cloud-init      yes",
            "owner           admin",
            "public          yes",
        ] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
        let installing = Image {
            sealed: false,
            sha256: String::new(),
            firmware: vm_proto::types::Firmware::Uefi,
            ..sample()
        };
        let text = details(&installing);
        for cell in ["status          installing", "sha256          -", "uefi"] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
        let unused = Image {
            used_by: vec![],
            source_format: "qcow2".into(),
            ..sample()
        };
        assert!(
            details(&unused).contains("used by         -"),
            "{}",
            details(&unused)
        );
    }

    #[test]
    fn json_round_trips_the_api_type() {
        let json = crate::output::to_json(&[sample()]).expect("json");
        assert_eq!(
            serde_json::from_str::<Vec<Image>>(&json).expect("parse"),
            vec![sample()]
        );
    }
}
