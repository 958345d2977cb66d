//! Facts about the host: which accelerator guests get, and how much memory there is.

use std::path::Path;

use vm_proto::types::Accelerator;

/// Accelerator policy from the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelPolicy {
    /// KVM only where `kvm_intel` or `kvm_amd` is loaded, else TCG.
    #[default]
    Auto,
    /// Always KVM (the admin knows better).
    Kvm,
    /// Always TCG.
    Tcg,
}

/// Chooses the accelerator under `policy`, reading `/sys/module` below `sys_root`.
pub fn choose_accelerator(policy: AccelPolicy, sys_root: &Path) -> Accelerator {
    let make = |name: &str, reason: String| Accelerator {
        name: name.into(),
        reason,
    };
    match policy {
        AccelPolicy::Kvm => make("kvm", "forced by config (accelerator = \"kvm\")".into()),
        AccelPolicy::Tcg => make("tcg", "forced by config (accelerator = \"tcg\")".into()),
        AccelPolicy::Auto => {
            let module = ["kvm_intel", "kvm_amd"]
                .into_iter()
                .find(|m| sys_root.join("sys/module").join(m).exists());
            let dev_kvm = sys_root.join("dev/kvm").exists();
            match (module, dev_kvm) {
                (Some(m), true) => make("kvm", format!("{m} is loaded and /dev/kvm exists")),
                (Some(m), false) => make("tcg", format!("{m} is loaded but /dev/kvm is missing")),
                (None, _) if sys_root.join("sys/module/kvm_pvm").exists() => make(
                    "tcg",
                    "/dev/kvm is backed by kvm_pvm, which cannot run stock guests; kvm_intel/kvm_amd not loaded".into(),
                ),
                (None, _) => make("tcg", "neither kvm_intel nor kvm_amd is loaded".into()),
            }
        }
    }
}

/// Total host memory in MiB, from `/proc/meminfo`.
pub fn memory_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvm_host_gets_tcg_and_intel_host_gets_kvm() {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("sys/module/kvm_pvm")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("dev")).expect("mkdir");
        std::fs::write(root.path().join("dev/kvm"), "").expect("touch");
        let acc = choose_accelerator(AccelPolicy::Auto, root.path());
        assert_eq!(acc.name, "tcg");
        assert!(acc.reason.contains("kvm_pvm"), "{}", acc.reason);
        std::fs::create_dir_all(root.path().join("sys/module/kvm_intel")).expect("mkdir");
        assert_eq!(
            choose_accelerator(AccelPolicy::Auto, root.path()).name,
            "kvm"
        );
        assert_eq!(
            choose_accelerator(AccelPolicy::Tcg, root.path()).name,
            "tcg"
        );
    }

    #[test]
    fn memory_is_known() {
        assert!(memory_mib() > 0);
    }
}
