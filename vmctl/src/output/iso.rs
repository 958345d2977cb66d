//! Tables for ISOs: the `iso ls` list and the `iso show` details.

use vm_proto::names::format_size;
use vm_proto::types::Iso;

use super::{created, created_short, kv_table, list_table, names, size_exact};

/// The `iso ls` table: NAME, SIZE, UPLOADED, OWNER, USED BY.
pub fn table(isos: &[Iso]) -> String {
    let headers = ["NAME", "SIZE", "UPLOADED", "OWNER", "USED BY"];
    list_table(&headers, isos.iter().map(row))
}

/// One `iso ls` row; USED BY names the VMs (it is the last column, so long lists do not
/// push the others apart).
fn row(iso: &Iso) -> Vec<String> {
    vec![
        iso.name.clone(),
        format_size(iso.size_bytes),
        created_short(&iso.created_at),
        iso.owner.clone(),
        names(&iso.used_by),
    ]
}

/// The `iso show` table: every field of the ISO, one per line.
pub fn details(iso: &Iso) -> String {
    kv_table(&[
        ("name", iso.name.clone()),
        ("size", size_exact(iso.size_bytes)),
        ("sha256", iso.sha256.clone()),
        ("owner", iso.owner.clone()),
        ("uploaded", created(&iso.created_at)),
        ("used by", names(&iso.used_by)),
        ("path", iso.path.clone()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Iso {
        Iso {
            name: "debian-12-5-0-amd64-netinst".into(),
            size_bytes: 659 << 20,
            sha256: "cd".repeat(32),
            owner: "admin".into(),
            created_at: "2024-05-01T12:00:00Z".into(),
            used_by: vec!["lab".into(), "web1".into()],
            path: "/var/lib/vmd/isos/debian-12-5-0-amd64-netinst.iso".into(),
        }
    }

    #[test]
    fn list_has_every_column() {
        let text = table(&[sample()]);
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["NAME", "SIZE", "UPLOADED", "OWNER", "USED", "BY"]
        );
        let row = lines.next().expect("row");
        for cell in [
            "debian-12-5-0-amd64-netinst",
            "659 MiB",
            "d ago",
            "admin",
            "lab, web1",
        ] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        let unused = Iso {
            used_by: vec![],
            ..sample()
        };
        let text = table(&[unused]);
        assert!(text.ends_with("   admin   -"), "{text}");
    }

    #[test]
    fn details_show_every_field() {
        let text = details(&sample());
        let hash = "cd".repeat(32);
        for cell in [
            "659 MiB (691011584 bytes)",
            hash.as_str(),
            "2024-05-01T12:00:00Z (",
            "lab, web1",
            "/var/lib/vmd/isos/debian-12-5-0-amd64-netinst.iso",
        ] {
            assert!(text.contains(cell), "{cell} missing in {text}");
        }
        assert!(text.starts_with("name       debian-12"), "{text}");
        assert!(text.contains("owner      admin"), "{text}");
    }

    #[test]
    fn json_round_trips_the_api_type() {
        let json = crate::output::to_json(&[sample()]).expect("json");
        assert_eq!(
            serde_json::from_str::<Vec<Iso>>(&json).expect("parse"),
            vec![sample()]
        );
    }
}
