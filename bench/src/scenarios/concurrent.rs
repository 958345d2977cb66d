//! `concurrent`: N clients released at once, each `vm.create` then `vm.start` of its own VM.
//! Reports errors, collisions (two VMs sharing a pid, VNC socket, QMP socket, console socket
//! or console log, or a pid whose QEMU is not the VM's: `-name guest=NAME`), the total and
//! each client's time; then N concurrent forced stops, and QEMUs left alive afterwards.
//! The floor: N threads at once, each `qemu-img create` then QEMU with vmd's argv spawned
//! directly until `running`.
//! The floor: N threads at once, each `qemu-img create` then QEMU with vmd's argv spawned
//! directly until `running`.

use std::collections::HashMap;
use std::sync::Barrier;
use std::time::Instant;

use anyhow::bail;
use serde_json::Value;

use super::{create_vm, ms, pid_of, start_vm, stop_vm, timed, Ctx, MEMORY_MIB};
use crate::daemon::Daemon;
use crate::fixtures::SMALL;
use crate::floor::{Floor, Running, Spec};
use crate::procfs;
use crate::report::{Report, Unit};
use crate::rpc::Client;

/// One client's time (ms) and result.
type Timed = (f64, anyhow::Result<Value>);

/// Runs the group.
pub fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let d = Daemon::start(ctx.opts, "concurrent")?;
    ctx.fixtures.import(&d.rpc, &[SMALL])?;
    let names: Vec<String> = (0..ctx.opts.concurrent)
        .map(|i| format!("c{i:02}"))
        .collect();
    let results = burst(&d, &names, report)?;
    let (vms, errors) = split(&names, results, report);
    let collisions = collisions(&vms);
    let what = "shared pids/sockets/logs among VMs";
    report.sample(
        "concurrent.collisions",
        Unit::Count,
        what,
        collisions as f64,
    );
    let bad_stops = stop_all(&d.rpc, &vms, report)?;
    if errors + collisions + bad_stops > 0 {
        bail!("{errors} failed create+start, {collisions} collisions, {bad_stops} failed or incomplete stops");
    }
    let accel = vms.first().and_then(|(_, vm)| vm["accelerator"].as_str());
    floor(ctx, accel.unwrap_or("tcg"), report)
}

/// The measured burst of create+start, with vmd's CPU time and context switches during it.
fn burst(d: &Daemon, names: &[String], report: &mut Report) -> anyhow::Result<Vec<Timed>> {
    let n = names.len() as f64;
    let (cpu, switches) = (procfs::cpu_ms(d.pid())?, procfs::context_switches(d.pid()));
    let (total, results) = timed(|| Ok(all_at_once(&d.rpc, names, create_and_start)))?;
    let cpu = procfs::cpu_ms(d.pid())? - cpu;
    let switches = procfs::context_switches(d.pid()).saturating_sub(switches) as f64;
    let what = format!("{n} concurrent create+start, wall clock");
    report.sample("concurrent.total", Unit::Ms, &what, total);
    let what = "vmd's own CPU time (user+sys) during them";
    report.sample("concurrent.vmd_cpu", Unit::Ms, what, cpu);
    let what = "vmd context switches per create+start (thread hand-offs)";
    report.sample(
        "concurrent.vmd_switches_per_vm",
        Unit::Count,
        what,
        switches / n,
    );
    Ok(results)
}

/// Records each client's time; returns the started VMs and the number of failures.
fn split(
    names: &[String],
    results: Vec<Timed>,
    report: &mut Report,
) -> (Vec<(String, Value)>, usize) {
    let mut errors = 0;
    let mut vms = Vec::new();
    for (name, (t, result)) in names.iter().zip(results) {
        match result {
            Ok(vm) => {
                report.sample(
                    "concurrent.each",
                    Unit::Ms,
                    "one client's create+start among N",
                    t,
                );
                vms.push((name.clone(), vm));
            }
            Err(err) => {
                errors += 1;
                report.note(format!("concurrent create+start of {name} failed: {err:#}"));
            }
        }
    }
    report.sample(
        "concurrent.errors",
        Unit::Count,
        "failed create+start calls",
        errors as f64,
    );
    (vms, errors)
}

/// The floor of the same work: N clients released at once, each `qemu-img create` of its
/// overlay then QEMU spawned directly until `running`; all are quit afterwards.
fn floor(ctx: &Ctx, accel: &str, report: &mut Report) -> anyhow::Result<()> {
    let n = ctx.opts.concurrent;
    let barrier = Barrier::new(n);
    let started = Instant::now();
    let results: Vec<anyhow::Result<(Floor, Running)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let floor = Floor::new(&floor_spec(i, accel), &ctx.fixtures.small)?;
                    let running = floor.start()?;
                    Ok((floor, running))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("floor thread panicked")))
            })
            .collect()
    });
    let total = ms(started.elapsed());
    let what = format!("{n} x (qemu-img create + direct QEMU start) at once, wall clock");
    report.sample("floor.concurrent.total", Unit::Ms, &what, total);
    let mut first_error = None;
    for result in results {
        match result {
            Ok((_floor, running)) => running.quit()?,
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    match first_error {
        Some(err) => Err(err.context("a concurrent floor start failed")),
        None => Ok(()),
    }
}

fn floor_spec(i: usize, accel: &str) -> Spec {
    Spec {
        name: format!("f{i:02}"),
        cpus: 1,
        memory_mib: MEMORY_MIB,
        accel: accel.into(),
    }
}

fn create_and_start(rpc: &Client, name: &str) -> anyhow::Result<Value> {
    create_vm(rpc, name, SMALL)?;
    start_vm(rpc, name)
}

/// Runs `op` for every name on its own thread, all released by one barrier; returns each
/// one's time and result, in `names` order.
fn all_at_once<F>(rpc: &Client, names: &[String], op: F) -> Vec<Timed>
where
    F: Fn(&Client, &str) -> anyhow::Result<Value> + Sync,
{
    let barrier = Barrier::new(names.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let result = op(rpc, name);
                    (ms(start.elapsed()), result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (0.0, Err(anyhow::anyhow!("client thread panicked"))))
            })
            .collect()
    })
}

/// Counts values that more than one VM has, over every identity a VM must not share.
fn collisions(vms: &[(String, Value)]) -> usize {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut foreign = 0;
    for (name, vm) in vms {
        let Ok(pid) = pid_of(vm) else {
            foreign += 1;
            continue;
        };
        let argv = procfs::cmdline(pid);
        foreign += usize::from(
            !argv
                .iter()
                .any(|a| a.starts_with(&format!("guest={name},"))),
        );
        let mut keys = vec![format!("pid {pid}"), format!("vnc {}", vm["vnc_socket"])];
        keys.extend(socket_paths(&argv));
        for key in keys {
            *seen.entry(key).or_default() += 1;
        }
    }
    foreign
        + seen
            .values()
            .filter(|&&c| c > 1)
            .map(|c| c - 1)
            .sum::<usize>()
}

/// The QMP socket, console socket and console log named in a QEMU argv.
fn socket_paths(argv: &[String]) -> Vec<String> {
    argv.iter()
        .flat_map(|a| a.split(','))
        .filter_map(|part| {
            let (key, value) = part.split_once(['=', ':'])?;
            matches!(key, "path" | "logfile" | "unix").then(|| format!("{key} {value}"))
        })
        .collect()
}

/// Stops every VM at once; returns how many stops failed or left their QEMU alive.
fn stop_all(rpc: &Client, vms: &[(String, Value)], report: &mut Report) -> anyhow::Result<usize> {
    let names: Vec<String> = vms.iter().map(|(n, _)| n.clone()).collect();
    if names.is_empty() {
        return Ok(0);
    }
    let (total, results) = timed(|| {
        Ok(all_at_once(rpc, &names, |rpc, name| {
            stop_vm(rpc, name, true)
        }))
    })?;
    let what = format!("{} concurrent forced stops, wall clock", names.len());
    report.sample("concurrent.stop_all", Unit::Ms, &what, total);
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    report.sample(
        "concurrent.stop_errors",
        Unit::Count,
        "failed forced stops",
        failed as f64,
    );
    let alive = vms
        .iter()
        .filter_map(|(_, vm)| pid_of(vm).ok())
        .filter(|&pid| procfs::is_alive(pid))
        .count();
    report.sample(
        "concurrent.left_alive",
        Unit::Count,
        "QEMUs alive after the stops returned",
        alive as f64,
    );
    Ok(failed + alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_found_in_qemu_options() {
        let argv: Vec<String> = [
            "-chardev",
            "socket,id=serial0,path=/r/1/console,server=on,wait=off,logfile=/l/a.log",
            "-qmp",
            "unix:/r/1/qmp,server=on,wait=off",
            "-vnc",
            "unix:/r/1/vnc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let paths = socket_paths(&argv);
        assert!(paths.contains(&"path /r/1/console".to_string()));
        assert!(paths.contains(&"logfile /l/a.log".to_string()));
        assert!(paths.contains(&"unix /r/1/qmp".to_string()));
        assert!(paths.contains(&"unix /r/1/vnc".to_string()));
    }
}
