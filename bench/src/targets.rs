//! The performance targets of issues 5, 10 and 14, judged on medians of a [`Report`].
//!
//! "10 MB" of RSS is read as 10 MiB (VmRSS is reported in KiB). The `ls` target names 1000
//! VMs; in smoke mode the largest count measured is judged instead and the label says so.

use crate::report::{Check, Report};

/// Start may take at most this many times the floor (direct QEMU until `running`).
pub const START_RATIO_MAX: f64 = 1.3;
/// Median forced stop, ms.
pub const FORCE_STOP_MS_MAX: f64 = 20.0;
/// Median create, ms.
pub const CREATE_MS_MAX: f64 = 15.0;
/// How far create on the large base may differ from the small one (fraction).
pub const CREATE_SIZE_SPREAD_MAX: f64 = 0.2;
/// Median `vmctl ls` of 1000 VMs, ms.
pub const LS_MS_MAX: f64 = 20.0;
/// Idle daemon RSS, MiB.
pub const IDLE_RSS_MIB_MAX: f64 = 10.0;
/// Median time a REST call through vmd-web may add to the same JSON-RPC call (issue 10), ms.
pub const REST_ADDED_MS_MAX: f64 = 1.0;
/// Median start of a warm template's clone until its shell answers, under TCG (issue 14), ms.
pub const CLONE_ANSWER_MS_MAX: f64 = 1000.0;
/// How many times faster than a cold boot a clone must answer (issue 14).
pub const CLONE_SPEEDUP_MIN: f64 = 8.0;
/// Host memory (PSS) of N running clones over N cold-booted guests (issue 14).
pub const CLONE_PSS_RATIO_MAX: f64 = 0.4;

/// Every target, met, missed or not measured.
pub fn check(r: &Report) -> Vec<Check> {
    let mut out = vec![
        start(r),
        at_most(
            r,
            "force stop <= 20 ms",
            "stop.force",
            FORCE_STOP_MS_MAX,
            "ms",
        ),
        at_most(
            r,
            "create (64 MiB base) <= 15 ms",
            "create.small",
            CREATE_MS_MAX,
            "ms",
        ),
        at_most(
            r,
            "create (20 GiB base) <= 15 ms",
            "create.large",
            CREATE_MS_MAX,
            "ms",
        ),
        size_independence(r),
        list(r),
        at_most(
            r,
            "idle RSS <= 10 MB (MiB)",
            "rss.idle",
            IDLE_RSS_MIB_MAX,
            "MiB",
        ),
    ];
    out.extend(concurrency(r));
    out.push(rest_overhead(r));
    out.extend(templates(r));
    out
}

fn templates(r: &Report) -> [Check; 3] {
    let answer = at_most(
        r,
        "clone start to answer <= 1 s (TCG)",
        "template.clone.answer",
        CLONE_ANSWER_MS_MAX,
        "ms",
    );
    let speedup = match (
        r.median("template.cold.answer"),
        r.median("template.clone.answer"),
    ) {
        (Some(cold), Some(clone)) => Check {
            target: format!("clone answers >= {CLONE_SPEEDUP_MIN}x faster than cold"),
            measured: format!("{:.1}x ({cold:.0}/{clone:.0} ms)", cold / clone),
            met: Some(cold / clone >= CLONE_SPEEDUP_MIN),
        },
        _ => not_measured(format!(
            "clone answers >= {CLONE_SPEEDUP_MIN}x faster than cold"
        )),
    };
    [answer, speedup, pss(r)]
}

fn pss(r: &Report) -> Check {
    let n = r
        .summary("template.pss.clones")
        .map_or("N".to_string(), |s| s.n.to_string());
    let percent = CLONE_PSS_RATIO_MAX * 100.0;
    let target = format!("PSS of {n} clones <= {percent:.0}% of {n} cold");
    let totals = (
        r.summary("template.pss.clones.total"),
        r.summary("template.pss.cold.total"),
    );
    match totals {
        (Some(clones), Some(cold)) => Check {
            target,
            measured: format!(
                "{:.0}% ({:.0}/{:.0} MiB)",
                clones.median / cold.median * 100.0,
                clones.median,
                cold.median
            ),
            met: Some(clones.median / cold.median <= CLONE_PSS_RATIO_MAX),
        },
        _ => not_measured(target),
    }
}

fn rest_overhead(r: &Report) -> Check {
    let target = format!("REST adds <= {REST_ADDED_MS_MAX} ms at p50");
    match (r.median("web.rest.vm_get"), r.median("web.rpc.vm_get")) {
        (Some(rest), Some(rpc)) => Check {
            target,
            measured: format!("{:.3} ms ({rest:.3}-{rpc:.3})", rest - rpc),
            met: Some(rest - rpc <= REST_ADDED_MS_MAX),
        },
        _ => not_measured(target),
    }
}

fn start(r: &Report) -> Check {
    let target = format!("start <= {START_RATIO_MAX}x floor");
    match (r.median("start"), r.median("floor.start")) {
        (Some(vmd), Some(floor)) => {
            let ratio = vmd / floor;
            Check {
                target,
                measured: format!("{ratio:.2}x ({vmd:.0}/{floor:.0} ms)"),
                met: Some(ratio <= START_RATIO_MAX),
            }
        }
        _ => not_measured(target),
    }
}

fn at_most(r: &Report, target: &str, metric: &str, max: f64, unit: &str) -> Check {
    match r.median(metric) {
        Some(v) => Check {
            target: target.into(),
            measured: format!("{v:.2} {unit}"),
            met: Some(v <= max),
        },
        None => not_measured(target.into()),
    }
}

fn size_independence(r: &Report) -> Check {
    let target = "create independent of base size (+-20%)".to_string();
    match (r.median("create.large"), r.median("create.small")) {
        (Some(large), Some(small)) => {
            let ratio = large / small;
            Check {
                target,
                measured: format!("large/small {ratio:.2}x"),
                met: Some((ratio - 1.0).abs() <= CREATE_SIZE_SPREAD_MAX),
            }
        }
        _ => not_measured(target),
    }
}

fn list(r: &Report) -> Check {
    let Some(count) = r.list_counts().into_iter().max() else {
        return not_measured("vmctl ls of 1000 VMs <= 20 ms".into());
    };
    let target = format!("vmctl ls of {count} VMs <= 20 ms");
    at_most(r, &target, &format!("list.vmctl.{count}"), LS_MS_MAX, "ms")
}

fn concurrency(r: &Report) -> Vec<Check> {
    ["concurrent.errors", "concurrent.collisions"]
        .into_iter()
        .map(|metric| match r.summary(metric) {
            Some(s) => Check {
                target: format!("{metric} = 0"),
                measured: format!("{}", s.max),
                met: Some(s.max == 0.0),
            },
            None => not_measured(format!("{metric} = 0")),
        })
        .collect()
}

fn not_measured(target: String) -> Check {
    Check {
        target,
        measured: "-".into(),
        met: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Unit;

    fn verdict(r: &Report, prefix: &str) -> Option<bool> {
        check(r)
            .into_iter()
            .find(|c| c.target.starts_with(prefix))
            .and_then(|c| c.met)
    }

    #[test]
    fn start_is_judged_against_the_floor() {
        let mut r = Report::default();
        assert_eq!(verdict(&r, "start"), None);
        r.sample("start", Unit::Ms, "", 120.0);
        r.sample("floor.start", Unit::Ms, "", 100.0);
        assert_eq!(verdict(&r, "start"), Some(true));
        r.sample("start", Unit::Ms, "", 200.0);
        r.sample("start", Unit::Ms, "", 200.0);
        assert_eq!(verdict(&r, "start"), Some(false));
    }

    #[test]
    fn rest_overhead_is_the_difference_of_medians() {
        let mut r = Report::default();
        assert_eq!(verdict(&r, "REST adds"), None);
        r.sample("web.rest.vm_get", Unit::Ms, "", 1.2);
        r.sample("web.rpc.vm_get", Unit::Ms, "", 0.4);
        assert_eq!(verdict(&r, "REST adds"), Some(true));
        r.sample("web.rest.vm_get", Unit::Ms, "", 2.0);
        r.sample("web.rest.vm_get", Unit::Ms, "", 2.0);
        assert_eq!(verdict(&r, "REST adds"), Some(false));
    }

    #[test]
    fn list_uses_the_largest_count() {
        let mut r = Report::default();
        r.sample("list.vmctl.10", Unit::Ms, "", 5.0);
        r.sample("list.vmctl.1000", Unit::Ms, "", 25.0);
        let c = check(&r)
            .into_iter()
            .find(|c| c.target.contains("ls of"))
            .expect("ls check");
        assert!(c.target.contains("1000"));
        assert_eq!(c.met, Some(false));
    }

    #[test]
    fn templates_need_speed_and_shared_memory() {
        let mut r = Report::default();
        assert_eq!(verdict(&r, "clone answers"), None);
        r.sample("template.cold.answer", Unit::Ms, "", 9000.0);
        r.sample("template.clone.answer", Unit::Ms, "", 400.0);
        assert_eq!(verdict(&r, "clone start to answer"), Some(true));
        assert_eq!(verdict(&r, "clone answers"), Some(true));
        r.sample("template.pss.clones.total", Unit::Mib, "", 500.0);
        r.sample("template.pss.cold.total", Unit::Mib, "", 1000.0);
        assert_eq!(verdict(&r, "PSS of"), Some(false));
    }

    #[test]
    fn any_concurrency_error_fails() {
        let mut r = Report::default();
        r.sample("concurrent.errors", Unit::Count, "", 0.0);
        r.sample("concurrent.errors", Unit::Count, "", 1.0);
        assert_eq!(verdict(&r, "concurrent.errors"), Some(false));
    }
}
