//! Terminal modes, each undone by a guard: raw mode for `vmctl console`, no echo for
//! password prompts.
//!
//! Raw mode sends every key to the guest as typed (Ctrl-C included) and leaves output
//! untranslated. [`RawMode`] and [`EchoOff`] restore the saved settings when dropped: on
//! return, on error and while a panic unwinds.

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};

use crate::error::CliError;

/// Stdin in raw mode while this lives.
#[must_use = "raw mode ends when the guard is dropped"]
pub struct RawMode {
    /// The settings to restore.
    saved: Termios,
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode.
    pub fn enable() -> Result<RawMode, CliError> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).map_err(failed)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(failed)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing better to do if this fails: the terminal is gone or `reset` will fix it.
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Stdin's terminal does not echo typed characters while this lives.
#[must_use = "echo comes back when the guard is dropped"]
pub struct EchoOff {
    /// The settings to restore.
    saved: Termios,
}

impl EchoOff {
    /// Turns echo off on the terminal on stdin (line editing stays on).
    pub fn enable() -> Result<EchoOff, CliError> {
        let stdin = std::io::stdin();
        let failed = |errno: nix::errno::Errno| CliError::Io {
            context: "cannot turn off the terminal's echo".to_string(),
            source: errno.into(),
        };
        let saved = tcgetattr(&stdin).map_err(failed)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(failed)?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // As for raw mode: nothing better to do if the terminal is gone.
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// The error for a failed terminal call.
fn failed(errno: nix::errno::Errno) -> CliError {
    CliError::Io {
        context: "cannot put the terminal in raw mode".to_string(),
        source: errno.into(),
    }
}
