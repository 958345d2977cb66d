#!/usr/bin/env bash
# The README's test command: installs dependencies (scripts/setup.sh), builds every binary
# (integration tests drive the built vmd and vmctl), then runs every test with cargo-nextest.
# Uses the nextest profile `ci` when CI=true, else `default` (see .config/nextest.toml);
# NEXTEST_PROFILE overrides. Extra arguments go to `cargo nextest run`, e.g.
#   ./scripts/test.sh -E 'test(image_import)'
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [[ -d $HOME/.cargo/bin ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

default_profile=default
if [[ ${CI:-} == true ]]; then
    default_profile=ci
fi

# The tiny guest the runtime tests boot (cached; rebuilt only when its recipe changes).
bash scripts/build-test-guest.sh >/dev/null
# The real Debian cloud-init guest of the provisioning tests (cached the same way; a cold build
# takes a few minutes, see docs/testing.md). Built here so no test's deadline pays for it.
bash scripts/build-cloud-guest.sh >/dev/null
cargo build --workspace --bins
# The benchmark is not a test; its smoke mode (one repetition, a few VMs) keeps it working.
# --chaos-strict: a chaos invariant violation (an orphaned QEMU, a state that disagrees with
# QEMU, a corrupt store) fails the run.
cargo run -q -p vmd-bench -- --smoke --chaos-strict --vmd target/debug/vmd --vmctl target/debug/vmctl --vmd-web target/debug/vmd-web
# The README's main command in its non-interactive form: the lab comes up (vmd, vmd-web, a
# base, demo accounts), both demo accounts log in over HTTP, and everything is removed.
bash scripts/demo.sh --check --debug --no-setup --port 0
cargo nextest run --workspace --no-fail-fast --profile "${NEXTEST_PROFILE:-$default_profile}" "$@"
