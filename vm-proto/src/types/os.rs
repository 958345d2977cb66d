//! The operating-system family of a base image: what the dashboard's icon and the `OS` column
//! show. vmd never looks inside a disk to find it: it is given (`os` of `image.import`,
//! `image.create`, `image.publish`, `image.set`) or guessed from a name by [`OsFamily::guess`].

use serde::{Deserialize, Serialize};

/// Family of the guest operating system installed on a base image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    /// Debian.
    Debian,
    /// Ubuntu and its flavours.
    Ubuntu,
    /// Fedora.
    Fedora,
    /// Red Hat Enterprise Linux and its rebuilds (CentOS, Rocky, AlmaLinux, Oracle Linux).
    Rhel,
    /// Alpine Linux.
    Alpine,
    /// Arch Linux and its derivatives.
    Arch,
    /// openSUSE and SUSE Linux Enterprise.
    Opensuse,
    /// FreeBSD.
    Freebsd,
    /// Microsoft Windows.
    Windows,
    /// Another Linux distribution.
    Linux,
    /// Anything else, or not known.
    #[default]
    Other,
}

/// Name words (lowercase, trailing digits removed) that name a family, most specific first.
/// A word matches when it starts with the prefix (`almalinux` → `alma`).
const PREFIXES: &[(&str, OsFamily)] = &[
    ("debian", OsFamily::Debian),
    ("ubuntu", OsFamily::Ubuntu),
    ("kubuntu", OsFamily::Ubuntu),
    ("xubuntu", OsFamily::Ubuntu),
    ("lubuntu", OsFamily::Ubuntu),
    ("fedora", OsFamily::Fedora),
    ("centos", OsFamily::Rhel),
    ("rhel", OsFamily::Rhel),
    ("redhat", OsFamily::Rhel),
    ("rocky", OsFamily::Rhel),
    ("alma", OsFamily::Rhel),
    ("oraclelinux", OsFamily::Rhel),
    ("alpine", OsFamily::Alpine),
    ("archlinux", OsFamily::Arch),
    ("manjaro", OsFamily::Arch),
    ("endeavouros", OsFamily::Arch),
    ("opensuse", OsFamily::Opensuse),
    ("suse", OsFamily::Opensuse),
    ("sles", OsFamily::Opensuse),
    ("tumbleweed", OsFamily::Opensuse),
    ("freebsd", OsFamily::Freebsd),
    ("windows", OsFamily::Windows),
];

/// Whole words (after trailing digits are removed) that name a family.
const WORDS: &[(&str, OsFamily)] = &[
    ("arch", OsFamily::Arch),
    ("win", OsFamily::Windows),
    ("leap", OsFamily::Opensuse),
];

/// Words that name some Linux, when no family word is found.
const LINUX_WORDS: &[&str] = &[
    "linux",
    "mint",
    "kali",
    "gentoo",
    "nixos",
    "void",
    "slackware",
    "cirros",
];

impl OsFamily {
    /// Every family, in the order menus list them.
    pub const ALL: [OsFamily; 11] = [
        OsFamily::Debian,
        OsFamily::Ubuntu,
        OsFamily::Fedora,
        OsFamily::Rhel,
        OsFamily::Alpine,
        OsFamily::Arch,
        OsFamily::Opensuse,
        OsFamily::Freebsd,
        OsFamily::Windows,
        OsFamily::Linux,
        OsFamily::Other,
    ];

    /// The wire and database spelling (`debian`, `rhel`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Debian => "debian",
            OsFamily::Ubuntu => "ubuntu",
            OsFamily::Fedora => "fedora",
            OsFamily::Rhel => "rhel",
            OsFamily::Alpine => "alpine",
            OsFamily::Arch => "arch",
            OsFamily::Opensuse => "opensuse",
            OsFamily::Freebsd => "freebsd",
            OsFamily::Windows => "windows",
            OsFamily::Linux => "linux",
            OsFamily::Other => "other",
        }
    }

    /// Parses [`OsFamily::as_str`].
    pub fn parse(text: &str) -> Option<OsFamily> {
        OsFamily::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// Infers the family from an image or ISO name: `debian-12` → debian, `ubuntu-24.04` →
    /// ubuntu, `Rocky-9.3-x86_64-minimal.iso` → rhel, `win11` → windows, `my-linux` → linux;
    /// anything unrecognised → other.
    pub fn guess(name: &str) -> OsFamily {
        let lower = name.to_ascii_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()))
            .filter(|w| !w.is_empty())
            .collect();
        let named = words.iter().find_map(|w| family_of_word(w));
        match named {
            Some(family) => family,
            None if words.iter().any(|w| LINUX_WORDS.contains(w)) => OsFamily::Linux,
            None => OsFamily::Other,
        }
    }
}

fn family_of_word(word: &str) -> Option<OsFamily> {
    let whole = WORDS.iter().find(|(w, _)| *w == word);
    let prefix = || PREFIXES.iter().find(|(p, _)| word.starts_with(p));
    whole.or_else(prefix).map(|(_, family)| *family)
}

impl std::fmt::Display for OsFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OsFamily {
    type Err = String;

    fn from_str(text: &str) -> Result<OsFamily, String> {
        OsFamily::parse(text).ok_or_else(|| {
            let all: Vec<&str> = OsFamily::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown OS family {text:?}; use one of {}", all.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_families_from_image_and_iso_names() {
        let cases = [
            ("debian-12", OsFamily::Debian),
            ("debian12-genericcloud", OsFamily::Debian),
            ("ubuntu-24.04", OsFamily::Ubuntu),
            ("Kubuntu-22.04-desktop-amd64.iso", OsFamily::Ubuntu),
            ("Fedora-Server-dvd-x86_64-40-1.14.iso", OsFamily::Fedora),
            ("centos-stream-9", OsFamily::Rhel),
            ("Rocky-9.3-x86_64-minimal.iso", OsFamily::Rhel),
            ("AlmaLinux-9-latest", OsFamily::Rhel),
            ("rhel9", OsFamily::Rhel),
            ("alpine-virt-3.19.0-x86_64.iso", OsFamily::Alpine),
            ("archlinux-2024.01.01-x86_64.iso", OsFamily::Arch),
            ("arch", OsFamily::Arch),
            ("openSUSE-Leap-15.5", OsFamily::Opensuse),
            ("leap15", OsFamily::Opensuse),
            ("FreeBSD-14.0-RELEASE-amd64-disc1.iso", OsFamily::Freebsd),
            ("win11", OsFamily::Windows),
            ("windows-server-2022", OsFamily::Windows),
            ("my-linux-box", OsFamily::Linux),
            ("mint21", OsFamily::Linux),
            ("base", OsFamily::Other),
            ("winery", OsFamily::Other),
            ("archive", OsFamily::Other),
            ("", OsFamily::Other),
        ];
        for (name, want) in cases {
            assert_eq!(OsFamily::guess(name), want, "{name}");
        }
    }

    #[test]
    fn spellings_round_trip_through_text_and_json() {
        for family in OsFamily::ALL {
            assert_eq!(OsFamily::parse(family.as_str()), Some(family));
            let json = serde_json::to_string(&family).expect("valid");
            assert_eq!(json, format!("\"{}\"", family.as_str()));
            assert_eq!(family.as_str().parse::<OsFamily>(), Ok(family));
        }
        let err = "beos".parse::<OsFamily>().expect_err("refused");
        assert!(err.contains("debian, ubuntu"), "{err}");
        assert_eq!(OsFamily::parse("Debian"), None);
    }
}
