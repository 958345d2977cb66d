//! Tables for base images: the `image ls` list and the `image show` details.

use vm_proto::names::format_size;
use vm_proto::types::Image;

use super::{created, created_short, kv_table, list_table, owner, size_exact};

/// The `image ls` table: NAME, FORMAT, VIRTUAL, ON DISK, USED BY, OWNER, CREATED.
pub fn table(images: &[Image]) -> String {
    let headers = [
        "NAME", "FORMAT", "VIRTUAL", "ON DISK", "USED BY", "OWNER", "CREATED",
    ];
    list_table(&headers, images.iter().map(row))
}

/// One `image ls` row; USED BY is the number of VMs.
fn row(image: &Image) -> Vec<String> {
    vec![
        image.name.clone(),
        format_column(image),
        format_size(image.virtual_size_bytes),
        format_size(image.disk_usage_bytes),
        image.used_by.len().to_string(),
        image.owner_uid.to_string(),
        created_short(&image.created_at),
    ]
}

/// `qcow2`, or `raw→qcow2` when the upload was converted.
fn format_column(image: &Image) -> String {
    if image.source_format == image.format {
        image.format.clone()
    } else {
        format!("{}→{}", image.source_format, image.format)
    }
}

/// The `image show` table: every field of the image, one per line.
pub fn details(image: &Image) -> String {
    let used_by = if image.used_by.is_empty() {
        "-".to_string()
    } else {
        image.used_by.join(", ")
    };
    kv_table(&[
        ("name", image.name.clone()),
        ("format", image.format.clone()),
        ("source format", image.source_format.clone()),
        ("virtual size", size_exact(image.virtual_size_bytes)),
        ("disk usage", size_exact(image.disk_usage_bytes)),
        ("sha256", image.sha256.clone()),
        ("owner", owner(image.owner_uid)),
        ("created", created(&image.created_at)),
        ("used by", used_by),
        ("path", image.path.clone()),
    ])
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
            owner_uid: 1000,
            created_at: "2024-05-01T12:00:00Z".into(),
            used_by: vec!["web1".into(), "web2".into()],
            path: "/var/lib/vmd/images/debian-12.qcow2".into(),
            sealed: true,
            firmware: vm_proto::types::Firmware::Bios,
        }
    }

    #[test]
    fn list_has_every_column() {
        let text = table(&[sample()]);
        let header = text.lines().next().expect("header");
        for column in [
            "NAME", "FORMAT", "VIRTUAL", "ON DISK", "USED BY", "OWNER", "CREATED",
        ] {
            assert!(header.contains(column), "{column} missing in {header}");
        }
        let row = text.lines().nth(1).expect("row");
        for cell in ["debian-12", "raw→qcow2", "2 GiB", "300 MiB", "1000"] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
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
        ] {
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
        assert_eq!(format_column(&unused), "qcow2");
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
