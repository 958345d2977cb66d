//! `wait --for log:REGEX`: matching console output line by line as it arrives.
//!
//! The log of the current boot is the text after vmd's last `starting QEMU` note. Each line
//! is tested without its `\r\n`, and so is the unfinished last line (a `login: ` prompt has no
//! newline), so `^` and `$` anchor at line ends. An unfinished line is kept up to
//! [`MAX_PENDING`] bytes; beyond that only its end is kept.

use regex::Regex;

/// Longest unfinished line kept between chunks.
const MAX_PENDING: usize = 64 << 10;

/// The note vmd writes to the console log when it starts QEMU.
const BOOT_MARK: &str = "] starting QEMU (";

/// The part of `log` written since the VM's QEMU last started (all of it without a mark).
pub fn current_boot(log: &str) -> &str {
    match log.rfind(BOOT_MARK) {
        Some(at) => log[at..].split_once('\n').map_or("", |(_, rest)| rest),
        None => log,
    }
}

/// Tests console output against a regular expression, one line at a time.
pub struct LineMatcher {
    regex: Regex,
    pending: String,
}

impl LineMatcher {
    /// A matcher for `regex`.
    pub fn new(regex: Regex) -> Self {
        LineMatcher {
            regex,
            pending: String::new(),
        }
    }

    /// Feeds a chunk; the first matching line, if any.
    pub fn feed(&mut self, chunk: &str) -> Option<String> {
        self.pending.push_str(chunk);
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if self.regex.is_match(line) {
                return Some(line.to_string());
            }
        }
        self.trim_pending();
        let partial = self.pending.trim_end_matches('\r');
        self.regex.is_match(partial).then(|| partial.to_string())
    }

    fn trim_pending(&mut self) {
        if self.pending.len() <= MAX_PENDING {
            return;
        }
        let mut cut = self.pending.len() - MAX_PENDING;
        while !self.pending.is_char_boundary(cut) {
            cut += 1;
        }
        self.pending.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(re: &str) -> LineMatcher {
        LineMatcher::new(Regex::new(re).expect("regex"))
    }

    #[test]
    fn matches_across_chunks_and_on_unfinished_lines() {
        let mut m = matcher("^web1 login: $");
        assert_eq!(
            m.feed("Debian GNU/Linux 12 web1 ttyS0\r\n\r\nweb1 lo"),
            None
        );
        assert_eq!(m.feed("gin: ").as_deref(), Some("web1 login: "));
        let mut m = matcher("Reached target .*Multi-User");
        assert_eq!(m.feed("a\r\nb [  OK  ] Reached target "), None);
        let hit = m.feed("multi-user.target - Multi-User System.\r\n");
        assert_eq!(
            hit.as_deref(),
            Some("b [  OK  ] Reached target multi-user.target - Multi-User System.")
        );
    }

    #[test]
    fn keeps_only_the_end_of_a_huge_line() {
        let mut m = matcher("^x{10}$");
        assert_eq!(m.feed(&"x".repeat(MAX_PENDING * 3)), None);
        assert!(m.pending.len() <= MAX_PENDING);
        assert_eq!(m.feed("\n"), None, "the line is longer than ten");
        assert!(m.pending.is_empty());
    }

    #[test]
    fn the_current_boot_starts_after_the_last_start_note() {
        let log = "old login: \r\n[vmd 2026-01-01T00:00:00Z] starting QEMU (tcg, 1 vCPU, 512 MiB)\r\nnew\r\n";
        assert_eq!(current_boot(log), "new\r\n");
        assert_eq!(current_boot("no notes\n"), "no notes\n");
    }
}
