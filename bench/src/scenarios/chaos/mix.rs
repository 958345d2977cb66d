//! The operation mix that runs while vmd is killed: a few client threads doing random
//! `vm.create`, `vm.start`, `vm.stop` (mostly forced), `vm.wipe` and `vm.remove` on a fixed
//! pool of names, counting each operation as ok, refused (a JSON-RPC error, e.g. a VM in the
//! wrong state) or cut (no answer: vmd was killed during it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

use crate::fixtures::GUEST;
use crate::rng::Rng;
use crate::rpc::Client;

/// Guest memory of chaos VMs: QEMU's allocation stays small with 20+ guests.
pub const CHAOS_MEMORY_MIB: u64 = 64;

/// Operation kinds, in the order of [`WEIGHTS`].
pub const KINDS: [&str; 5] = ["create", "start", "stop", "wipe", "remove"];
/// Relative frequency of each kind.
const WEIGHTS: [u32; 5] = [15, 30, 25, 10, 20];

/// Outcomes of one kind of operation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Outcomes {
    /// Requests sent.
    pub attempted: u64,
    /// Answered with a result.
    pub ok: u64,
    /// Answered with a JSON-RPC error (wrong state, already exists, …).
    pub refused: u64,
    /// No answer: the connection died with vmd.
    pub cut: u64,
}

/// The VM names the mix works on.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Long-lived guests, started at set-up; the mix stops and starts them now and then.
    pub guests: Vec<String>,
    /// Names that are created, wiped and removed.
    pub churn: Vec<String>,
}

/// Shared state of one round's workers.
pub struct Round<'a> {
    /// Client of the daemon.
    pub rpc: &'a Client,
    /// Names to work on.
    pub pool: &'a Pool,
    /// Requests sent so far in this round (the kill waits for a random count).
    pub sent: AtomicUsize,
    /// Set just before the kill: workers finish their current request and return.
    pub stop: AtomicBool,
    /// Outcomes per kind, indexed like [`KINDS`].
    pub tally: Mutex<[Outcomes; 5]>,
}

impl<'a> Round<'a> {
    /// A round with nothing sent yet.
    pub fn new(rpc: &'a Client, pool: &'a Pool) -> Round<'a> {
        Round {
            rpc,
            pool,
            sent: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            tally: Mutex::new([Outcomes::default(); 5]),
        }
    }

    /// One worker: random operations until [`Round::stop`] is set.
    pub fn work(&self, mut rng: Rng) {
        while !self.stop.load(Ordering::SeqCst) {
            let kind = rng.weighted(&WEIGHTS);
            let (method, params) = self.request(kind, &mut rng);
            self.sent.fetch_add(1, Ordering::SeqCst);
            let outcome = self.rpc.try_call(method, params);
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            let t = &mut tally[kind];
            t.attempted += 1;
            match outcome {
                Ok(Ok(_)) => t.ok += 1,
                Ok(Err(_)) => t.refused += 1,
                Err(_) => t.cut += 1,
            }
        }
    }

    /// The method and params of a random operation of `kind`.
    fn request(&self, kind: usize, rng: &mut Rng) -> (&'static str, Value) {
        let churn = rng.pick(&self.pool.churn).clone();
        match KINDS[kind] {
            "create" => (
                "vm.create",
                json!([{"name": churn, "image": GUEST, "memory_mib": CHAOS_MEMORY_MIB}]),
            ),
            "start" => ("vm.start", json!([self.any(rng)])),
            "stop" => {
                let name = if rng.chance(25) {
                    rng.pick(&self.pool.guests).clone()
                } else {
                    churn
                };
                let force = rng.chance(80);
                (
                    "vm.stop",
                    json!([{"name": name, "force": force, "timeout_secs": 1}]),
                )
            }
            "wipe" => ("vm.wipe", json!([churn])),
            _ => ("vm.remove", json!([churn])),
        }
    }

    /// Any name of the pool.
    fn any(&self, rng: &mut Rng) -> String {
        let all = self.pool.guests.len() + self.pool.churn.len();
        let i = rng.below(all);
        match self.pool.guests.get(i) {
            Some(name) => name.clone(),
            None => self.pool.churn[i - self.pool.guests.len()].clone(),
        }
    }

    /// The outcomes so far.
    pub fn outcomes(&self) -> [Outcomes; 5] {
        *self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Adds `b` to `a`, kind by kind.
pub fn add(a: &mut [Outcomes; 5], b: &[Outcomes; 5]) {
    for (x, y) in a.iter_mut().zip(b) {
        x.attempted += y.attempted;
        x.ok += y.ok;
        x.refused += y.refused;
        x.cut += y.cut;
    }
}
