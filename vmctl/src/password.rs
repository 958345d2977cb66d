//! Reading passwords: from the first line of stdin (`--password-stdin`, or whenever stdin is
//! not a terminal), else by prompting on the terminal with echo off.
//!
//! Passwords are never printed, logged or put in an error message. New passwords are checked
//! against vm-proto's length bounds here, so that a bad one exits 6 before any round trip.

use std::io::{BufRead, IsTerminal, Write};

use vm_proto::types::{PASSWORD_MAX_BYTES, PASSWORD_MIN_CHARS};

use crate::error::CliError;
use crate::terminal::EchoOff;

/// Where a password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The first line of stdin.
    Stdin,
    /// Prompt once on the terminal (login).
    Prompt,
    /// Prompt twice on the terminal, the answers must match (a new password).
    PromptTwice,
}

impl Source {
    /// `--password-stdin` or a stdin that is not a terminal read stdin; else `prompt`.
    pub fn pick(password_stdin: bool, prompt: Source) -> Source {
        if password_stdin || !std::io::stdin().is_terminal() {
            Source::Stdin
        } else {
            prompt
        }
    }
}

/// Reads a password from `source`, unchecked (it may be empty).
pub fn read(source: Source) -> Result<String, CliError> {
    match source {
        Source::Stdin => first_line(std::io::stdin().lock()),
        Source::Prompt => prompt("Password: "),
        Source::PromptTwice => confirmed(),
    }
}

/// Fails when `password` is empty.
pub fn check_not_empty(password: &str) -> Result<(), CliError> {
    match password.is_empty() {
        true => Err(CliError::invalid("the password is empty")),
        false => Ok(()),
    }
}

/// Fails unless `password` has vm-proto's length: at least [`PASSWORD_MIN_CHARS`] characters,
/// at most [`PASSWORD_MAX_BYTES`] bytes.
pub fn check_new(password: &str) -> Result<(), CliError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(CliError::invalid(format!(
            "the password is too short: at least {PASSWORD_MIN_CHARS} characters"
        )));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(CliError::invalid(format!(
            "the password is too long: at most {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The first line of `reader` without its line ending (`\n` or `\r\n`).
pub fn first_line(mut reader: impl BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|source| CliError::Io {
        context: "cannot read the password from stdin".to_string(),
        source,
    })?;
    let end = line.trim_end_matches('\n').trim_end_matches('\r').len();
    line.truncate(end);
    Ok(line)
}

/// Asks twice; the answers must match.
fn confirmed() -> Result<String, CliError> {
    let first = prompt("New password: ")?;
    let again = prompt("Retype new password: ")?;
    if first != again {
        return Err(CliError::invalid("the passwords do not match"));
    }
    Ok(first)
}

/// Prints `label` on stderr and reads a line from the terminal with echo off.
fn prompt(label: &str) -> Result<String, CliError> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let _echo = EchoOff::enable()?;
    first_line(std::io::stdin().lock())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_drops_only_the_line_ending() {
        let line = |text: &str| first_line(text.as_bytes()).expect("reads");
        assert_eq!(line("hunter2 x\nsecond\n"), "hunter2 x");
        assert_eq!(line("pw\r\n"), "pw");
        assert_eq!(line(" spaced \n"), " spaced ");
        assert_eq!(line("no newline"), "no newline");
        assert_eq!(line(""), "");
    }

    #[test]
    fn new_passwords_have_bounded_lengths() {
        assert!(check_new("long enough").is_ok());
        assert_eq!(check_not_empty("").expect_err("empty").exit_code(), 6);
        assert!(check_not_empty("x").is_ok());
        assert!(check_new(&"é".repeat(PASSWORD_MIN_CHARS)).is_ok());
        for bad in ["abc1234".to_string(), "x".repeat(PASSWORD_MAX_BYTES + 1)] {
            let err = check_new(&bad).expect_err("bad length");
            assert_eq!(err.exit_code(), 6);
            assert!(!err.to_string().contains(&bad), "never echoes the password");
        }
    }
}
