#!/usr/bin/env bash
# Refreshes the screenshots in docs/img (shown in the README and docs/ui.md). They are taken
# by the browser test of the whole lab (vmd-web/ui-tests/lab.mjs, run by
# `lab_journey_with_both_roles_in_chromium`), which takes them on every run as artifacts;
# with UI_DOCS set it also writes them here. Needs what scripts/test.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -d $HOME/.cargo/bin ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build --workspace --bins
UI_DOCS=$PWD/docs/img cargo nextest run -p vmd-web --test ui -E 'test(lab_journey_with_both_roles)'
ls -l docs/img
