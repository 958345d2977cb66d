//! The QEMU layer: how vmd builds a QEMU command line, starts and watches the process, and
//! talks to it over QMP.
//!
//! # Layout
//! - [`argv`]: [`QemuConfig`] (typed options) → argv, with golden tests.
//! - [`netargs`]: the NICs (user-mode with port forwards, taps on lab networks).
//! - [`process`]: spawning QEMU in its own process group, `/proc` checks that survive pid
//!   reuse, exit descriptions, log tails.
//! - [`scan`]: finding this instance's QEMU processes in `/proc` by the run directory on
//!   their command line (start-up adoption, orphan detection).
//! - [`qga`]: a small qemu-guest-agent client (sync, OS, hostname, addresses), bounded
//!   against a hostile guest.
//! - [`qmp`]: a small hand-written QMP client (greeting, capabilities, id-matched replies,
//!   events on a broadcast channel, typed helpers for the commands vmd uses).
//!
//! # Files a QEMU process uses
//! Every path in [`QemuConfig`] is opened or created by QEMU while it still runs as the user
//! that spawned it (root under systemd), before `-runas` drops privileges: the overlay, the
//! serial log, the ISO inserted at boot, and the QMP, console and VNC listening sockets. Nothing
//! is opened by path afterwards (an ISO inserted live arrives as a descriptor over QMP, see
//! [`Qmp::insert_medium`]), so the per-VM directory and the state directory may stay private
//! to vmd (tested with 0700 directories). The
//! unprivileged QEMU cannot unlink its sockets when it exits, so socket files remain; they
//! do no harm: the next QEMU unlinks a leftover before it binds, and a QMP client that
//! connects to a leftover gets `ECONNREFUSED`, which [`Qmp::connect`] retries.

pub mod argv;
pub mod netargs;
pub mod process;
pub mod qga;
pub mod qmp;
pub mod scan;

pub use argv::{qemu_binary, Accel, QemuConfig};
pub use process::ProcessError;
pub use qmp::{Qmp, QmpError, QmpEvent, RunState, StatusInfo};
