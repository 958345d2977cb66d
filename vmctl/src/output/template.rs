//! Tables for warm templates: the `template ls` list and the `template show` details with
//! the names of their clones.

use vm_proto::names::format_size;
use vm_proto::types::Template;

use super::{created, created_short, kv_table, list_table, names, size_exact, yes_no};

/// The `template ls` table: NAME, OWNER, IMAGE, CPUS, MEMORY, DISK (virtual size), CLONES
/// (how many the caller may see), SIZE (bytes its files occupy), CREATED.
pub fn table(templates: &[Template]) -> String {
    let headers = [
        "NAME", "OWNER", "IMAGE", "CPUS", "MEMORY", "DISK", "CLONES", "SIZE", "CREATED",
    ];
    list_table(&headers, templates.iter().map(row))
}

/// One `template ls` row.
fn row(t: &Template) -> Vec<String> {
    vec![
        t.name.clone(),
        t.owner.clone(),
        t.image.clone(),
        t.cpus.to_string(),
        format_size(t.memory_mib.saturating_mul(super::vm::MIB)),
        format_size(t.disk_bytes),
        t.clones.len().to_string(),
        format_size(t.usage_bytes),
        created_short(&t.created_at),
    ]
}

/// The `template show` text: every field one per line, the clones by name last.
pub fn details(t: &Template) -> String {
    kv_table(&[
        ("name", t.name.clone()),
        ("owner", t.owner.clone()),
        ("shared", yes_no(t.shared).to_string()),
        ("source vm", t.source_vm.clone()),
        ("image", t.image.clone()),
        ("cpus", t.cpus.to_string()),
        ("memory", super::vm::memory(t.memory_mib)),
        ("disk size", size_exact(t.disk_bytes)),
        ("firmware", t.firmware.as_str().to_string()),
        ("user net", yes_no(t.user_net).to_string()),
        ("accelerator", t.accelerator.clone()),
        ("qemu version", t.qemu_version.clone()),
        ("size", size_exact(t.usage_bytes)),
        ("created", created(&t.created_at)),
        ("clones", t.clones.len().to_string()),
        ("clone names", names(&t.clones)),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A template as the daemon would return it.
    pub(crate) fn sample() -> Template {
        Template {
            name: "lab-base".into(),
            owner: "admin".into(),
            shared: true,
            source_vm: "web1".into(),
            image: "debian-12".into(),
            cpus: 2,
            memory_mib: 1024,
            disk_bytes: 8 << 30,
            firmware: vm_proto::types::Firmware::Bios,
            user_net: true,
            accelerator: "kvm".into(),
            qemu_version: "9.2.0".into(),
            usage_bytes: 300 << 20,
            clones: vec!["web1".into(), "web2".into(), "web3".into()],
            created_at: "2024-05-01T12:00:00Z".into(),
        }
    }

    #[test]
    fn list_has_every_column() {
        let bare = Template {
            name: "tiny".into(),
            owner: "ann".into(),
            shared: false,
            cpus: 1,
            memory_mib: 256,
            clones: vec![],
            ..sample()
        };
        let text = table(&[sample(), bare]);
        let lines: Vec<_> = text.lines().collect();
        let cells = |line: &str| -> Vec<String> {
            let cells = line.split("   ").map(str::trim).filter(|c| !c.is_empty());
            cells.map(String::from).collect()
        };
        assert_eq!(
            cells(lines[0]),
            ["NAME", "OWNER", "IMAGE", "CPUS", "MEMORY", "DISK", "CLONES", "SIZE", "CREATED"]
        );
        let first = cells(lines[1]);
        assert_eq!(
            first[..8],
            [
                "lab-base",
                "admin",
                "debian-12",
                "2",
                "1 GiB",
                "8 GiB",
                "3",
                "300 MiB"
            ]
        );
        assert!(first[8].ends_with("d ago"), "{text}");
        let second = cells(lines[2]);
        assert_eq!(
            second[..7],
            ["tiny", "ann", "debian-12", "1", "256 MiB", "8 GiB", "0"]
        );
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    }

    #[test]
    fn details_show_every_field_and_the_clones() {
        let text = details(&sample());
        for line in [
            "name           lab-base",
            "shared         yes",
            "source vm      web1",
            "memory         1 GiB (1024 MiB)",
            "disk size      8 GiB (8589934592 bytes)",
            "firmware       bios",
            "user net       yes",
            "accelerator    kvm",
            "qemu version   9.2.0",
            "size           300 MiB (314572800 bytes)",
            "created        2024-05-01T12:00:00Z",
            "clones         3",
            "clone names    web1, web2, web3",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        let alone = Template {
            clones: vec![],
            ..sample()
        };
        assert!(
            details(&alone).ends_with("clone names    -"),
            "{}",
            details(&alone)
        );
    }

    #[test]
    fn json_round_trips_the_api_type() {
        let json = crate::output::to_json(&[sample()]).expect("json");
        assert_eq!(
            serde_json::from_str::<Vec<Template>>(&json).expect("parse"),
            vec![sample()]
        );
    }
}
