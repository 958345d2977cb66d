//! Validation of object names and parsing of human-written sizes.
//!
//! Shared by daemon and clients: the daemon is the authority, clients call the same functions to
//! fail fast (before an upload, say).

/// Longest accepted name: a DNS label.
pub const NAME_MAX_LEN: usize = 63;

/// Checks that `name` is a DNS label: 1–63 characters of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit. Lowercase only, so names never differ by case alone.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let rule =
        "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";
    if name.is_empty() {
        return Err(format!("{what} name is empty: {rule}"));
    }
    if name.len() > NAME_MAX_LEN {
        return Err(format!(
            "{what} name is {} characters long: {rule}",
            name.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let edges_ok = !name.starts_with('-') && !name.ends_with('-');
    if !name.chars().all(ok_char) || !edges_ok {
        return Err(format!("invalid {what} name {name:?}: {rule}"));
    }
    Ok(())
}

/// Longest account name (as login names on Linux).
pub const ACCOUNT_NAME_MAX_LEN: usize = 32;

/// Checks an account name: 1–32 characters of `a-z`, `0-9`, `_`, `-` and `.`, starting with
/// a letter or `_` (the portable login-name rule, lowercase so names never differ by case).
pub fn validate_account_name(name: &str) -> Result<(), String> {
    let rule =
        "use 1-32 lowercase letters, digits, '_', '-' and '.', starting with a letter or '_'";
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.');
    if !first_ok || name.len() > ACCOUNT_NAME_MAX_LEN || !name.chars().all(ok_char) {
        return Err(format!("invalid account name {name:?}: {rule}"));
    }
    Ok(())
}

/// Parses a size such as `512M`, `2G`, `2GiB`, `1.5G` or plain bytes (`1048576`).
///
/// Suffixes `K`, `M`, `G`, `T` (optionally followed by `B` or `iB`, any case) are binary
/// multiples (1K = 1024), as with qemu-img. The result must fit in a `u64`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size {text:?}: use bytes or a number with K, M, G or T (e.g. 512M, 2G)")
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.matches('.').count() > 1 {
        return Err(bad());
    }
    if let Some((int, frac)) = number.split_once('.') {
        let whole: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_value: f64 = format!("0.{frac}").parse().map_err(|_| bad())?;
        let unit_bytes = 1u64 << shift;
        let whole_bytes = whole.checked_mul(unit_bytes).ok_or_else(bad)?;
        return whole_bytes
            .checked_add((frac_value * unit_bytes as f64) as u64)
            .ok_or_else(bad);
    }
    let value: u64 = number.parse().map_err(|_| bad())?;
    value.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Formats bytes the way [`parse_size`] reads them back, with binary units (`1.5 GiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in ["a", "web1", "debian-12", "0abc", &"x".repeat(63)] {
            assert!(validate_name("vm", name).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_names_fail_with_rule() {
        for name in [
            "",
            "-a",
            "a-",
            "Web1",
            "a_b",
            "a.b",
            "a b",
            "é",
            &"x".repeat(64),
            "../x",
        ] {
            let err = validate_name("vm", name).expect_err(name);
            assert!(err.contains("lowercase letters"), "{err}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4k"), Ok(4096));
    }

    #[test]
    fn bad_sizes_fail() {
        for s in [
            "",
            "-1",
            "1X",
            "G",
            "1.2.3G",
            "99999999999999999999",
            "17179869184T",
            "1 G B",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
    }

    #[test]
    fn sizes_format() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
    }
}
