//! Unit tests of the VMDK parser: crafted headers and descriptors for every refusal, and real
//! `qemu-img` output accepted.

use std::io::Write;
use std::process::Command;

use super::*;

/// Header fields a test may change; the rest are qemu-img's.
struct Hdr {
    version: u32,
    flags: u32,
    capacity: u64,
    grain: u64,
    desc: (u64, u64),
    gtes: u32,
    gd: u64,
}

impl Default for Hdr {
    fn default() -> Hdr {
        Hdr {
            version: 1,
            flags: 3,
            capacity: 2048,
            grain: 128,
            desc: (1, 20),
            gtes: 512,
            gd: 21,
        }
    }
}

impl Hdr {
    fn bytes(&self) -> Vec<u8> {
        let mut b = b"KDMV".to_vec();
        for v in [self.version, self.flags] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.capacity, self.grain, self.desc.0, self.desc.1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.gtes.to_le_bytes());
        for v in [0, self.gd, 128] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(b"\0\n \r\n\0\0");
        b.resize(512, 0);
        b
    }
}

fn desc(create_type: &str, extent: &str) -> String {
    format!("# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"{create_type}\"\n\n# Extent description\n{extent}\n\nddb.adapterType = \"ide\"\n")
}

fn image(hdr: &Hdr, descriptor: &str) -> Vec<u8> {
    let mut b = hdr.bytes();
    let mut d = descriptor.as_bytes().to_vec();
    d.resize(20 * 512, 0);
    b.extend_from_slice(&d);
    b.resize(128 * 512, 0);
    b
}

fn check(bytes: &[u8]) -> Result<u64, DetectError> {
    let mut tmp = tempfile::NamedTempFile::new().expect("tmp");
    tmp.write_all(bytes).expect("write");
    check_file(&mut File::open(tmp.path()).expect("open"))
}

fn refusal(bytes: &[u8]) -> VmdkError {
    match check(bytes) {
        Err(DetectError::Vmdk(e)) => e,
        other => panic!("expected a VMDK refusal, got {other:?}"),
    }
}

/// Which refusal a case expects.
type Expect = fn(&VmdkError) -> bool;

const GOOD: &str = "RW 2048 SPARSE \"disk.vmdk\"";

#[test]
fn crafted_self_contained_sparse_is_accepted() {
    let bytes = image(&Hdr::default(), &desc("monolithicSparse", GOOD));
    assert_eq!(check(&bytes).expect("accepted"), 2048 * 512);
}

#[test]
fn capacity_zero_is_refused_whatever_the_descriptor() {
    let hdr = Hdr {
        capacity: 0,
        ..Hdr::default()
    };
    for extent in [
        GOOD,
        "RW 8 FLAT \"/etc/shadow\" 0",
        "RW 8 FLAT \"../../etc/passwd\" 0",
    ] {
        let err = refusal(&image(&hdr, &desc("monolithicFlat", extent)));
        assert!(matches!(err, VmdkError::ZeroCapacity), "{extent}: {err}");
        assert!(!err.to_string().contains("etc"), "{err}");
    }
}

#[test]
fn foreign_extents_are_refused_without_quoting_paths() {
    let cases: [(&str, &str, Expect); 8] = [
        (
            "monolithicFlat",
            GOOD,
            |e| matches!(e, VmdkError::CreateType(t) if t == "monolithicFlat"),
        ),
        ("twoGbMaxExtentSparse", GOOD, |e| {
            matches!(e, VmdkError::CreateType(_))
        }),
        ("vmfs", GOOD, |e| matches!(e, VmdkError::CreateType(_))),
        (
            "monolithicSparse",
            "RW 2048 FLAT \"/etc/shadow\" 0",
            |e| matches!(e, VmdkError::ExtentKind(k) if k == "FLAT"),
        ),
        ("monolithicSparse", "RW 2048 ZERO", |e| {
            matches!(e, VmdkError::ExtentKind(_))
        }),
        ("monolithicSparse", "RW 2048 SPARSE \"/etc/passwd\"", |e| {
            matches!(e, VmdkError::ExtentFile)
        }),
        (
            "monolithicSparse",
            "RW 2048 SPARSE \"../../../etc/passwd\"",
            |e| matches!(e, VmdkError::ExtentFile),
        ),
        ("streamOptimized", "RW 2048 SPARSE \"..\"", |e| {
            matches!(e, VmdkError::ExtentFile)
        }),
    ];
    for (create_type, extent, expected) in cases {
        let err = refusal(&image(&Hdr::default(), &desc(create_type, extent)));
        assert!(expected(&err), "{create_type} / {extent}: got {err:?}");
        assert!(!err.to_string().contains("etc/"), "{err}");
    }
}

#[test]
fn extent_count_size_and_syntax_are_checked() {
    let two = "RW 1024 SPARSE \"a.vmdk\"\nRW 1024 SPARSE \"b.vmdk\"";
    let err = refusal(&image(&Hdr::default(), &desc("monolithicSparse", two)));
    assert!(matches!(err, VmdkError::ExtentCount(2)), "{err:?}");
    let none = desc("monolithicSparse", "");
    let err = refusal(&image(&Hdr::default(), &none));
    assert!(matches!(err, VmdkError::ExtentCount(0)), "{err:?}");
    let big = desc("monolithicSparse", "RW 4096 SPARSE \"a.vmdk\"");
    let err = refusal(&image(&Hdr::default(), &big));
    assert!(
        matches!(
            err,
            VmdkError::ExtentSize {
                extent: 4096,
                capacity: 2048
            }
        ),
        "{err:?}"
    );
    for bad in [
        "RW lots SPARSE \"a\"",
        "RW 2048 SPARSE a.vmdk",
        "RW 2048 SPARSE \"a\" x",
    ] {
        let err = refusal(&image(&Hdr::default(), &desc("monolithicSparse", bad)));
        assert!(matches!(err, VmdkError::ExtentSyntax(8)), "{bad}: {err:?}");
    }
    let garbage = desc("monolithicSparse", GOOD) + "this is not a key value\n";
    let err = refusal(&image(&Hdr::default(), &garbage));
    assert!(matches!(err, VmdkError::Line(_)), "{err:?}");
    let twice = desc("monolithicSparse", GOOD) + "createType=\"monolithicFlat\"\n";
    let err = refusal(&image(&Hdr::default(), &twice));
    assert!(matches!(err, VmdkError::Line(_)), "{err:?}");
}

#[test]
fn parents_are_refused_wherever_qemu_would_look() {
    let cid = desc("monolithicSparse", GOOD).replace("parentCID=ffffffff", "parentCID=1234abcd");
    assert!(matches!(
        refusal(&image(&Hdr::default(), &cid)),
        VmdkError::Parent
    ));
    let hint = desc("monolithicSparse", GOOD) + "parentFileNameHint=\"/etc/passwd\"\n";
    assert!(matches!(
        refusal(&image(&Hdr::default(), &hint)),
        VmdkError::Parent
    ));
    // The header points the descriptor elsewhere; qemu still reads sectors 1-20 for the hint.
    let hdr = Hdr {
        desc: (40, 20),
        ..Hdr::default()
    };
    let mut bytes = image(&hdr, "parentFileNameHint=\"/etc/passwd\"\n");
    let good = desc("monolithicSparse", GOOD);
    bytes[40 * 512..40 * 512 + good.len()].copy_from_slice(good.as_bytes());
    assert!(matches!(refusal(&bytes), VmdkError::Parent));
}

#[test]
fn header_geometry_and_descriptor_bounds_are_checked() {
    let d = desc("monolithicSparse", GOOD);
    let cases: [(Hdr, Expect); 7] = [
        (
            Hdr {
                version: 4,
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::Version(4)),
        ),
        (
            Hdr {
                grain: 100,
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::GrainSize(100)),
        ),
        (
            Hdr {
                gtes: 0,
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::GrainTable(0)),
        ),
        (
            Hdr {
                desc: (0, 0),
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::NoDescriptor),
        ),
        (
            Hdr {
                desc: (1, 1 << 20),
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::DescriptorBounds),
        ),
        (
            Hdr {
                desc: (u64::MAX / 2, 20),
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::DescriptorBounds),
        ),
        (
            Hdr {
                gd: u64::MAX,
                ..Hdr::default()
            },
            |e| matches!(e, VmdkError::Footer),
        ),
    ];
    for (hdr, expected) in cases {
        let err = refusal(&image(&hdr, &d));
        assert!(expected(&err), "got {err:?}");
    }
    let mut damaged = image(&Hdr::default(), &d);
    damaged[75] = b'\n';
    assert!(matches!(refusal(&damaged), VmdkError::Newlines));
    let mut binary = image(&Hdr::default(), &d);
    binary[512] = 0xff;
    assert!(matches!(refusal(&binary), VmdkError::DescriptorText));
    assert!(matches!(
        refusal(&Hdr::default().bytes()[..100]),
        VmdkError::Truncated
    ));
}

#[test]
fn huge_capacity_is_too_large() {
    let hdr = Hdr {
        capacity: 1 << 51,
        ..Hdr::default()
    };
    let bytes = image(
        &hdr,
        &desc("monolithicSparse", "RW 2251799813685248 SPARSE \"a\""),
    );
    assert!(matches!(check(&bytes), Err(DetectError::TooLarge(b)) if b == 1 << 60));
}

#[test]
fn stream_footer_takes_precedence() {
    let hdr = Hdr {
        gd: u64::MAX,
        ..Hdr::default()
    };
    let mut bytes = image(&hdr, &desc("streamOptimized", "RW 4096 SPARSE \"s.vmdk\""));
    let mut footer = vec![0u8; 1536];
    footer[12..16].copy_from_slice(&3u32.to_le_bytes());
    let real = Hdr {
        capacity: 4096,
        gd: 30,
        ..Hdr::default()
    };
    footer[512..1024].copy_from_slice(&real.bytes());
    bytes.extend_from_slice(&footer);
    assert_eq!(check(&bytes).expect("accepted"), 4096 * 512);
    let zero = Hdr {
        capacity: 0,
        ..real
    };
    let len = bytes.len();
    bytes[len - 1024..len - 512].copy_from_slice(&zero.bytes());
    assert!(matches!(refusal(&bytes), VmdkError::ZeroCapacity));
}

#[test]
fn real_qemu_img_vmdks_are_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    for subformat in ["monolithicSparse", "streamOptimized"] {
        let path = dir.path().join(format!("{subformat}.vmdk"));
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "vmdk", "-o"])
            .arg(format!("subformat={subformat}"))
            .arg(&path)
            .arg("64M")
            .output()
            .expect("qemu-img (run scripts/setup.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let size = check_file(&mut File::open(&path).expect("open"));
        assert_eq!(size.expect(subformat), 64 << 20, "{subformat}");
    }
}
