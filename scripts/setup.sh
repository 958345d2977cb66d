#!/usr/bin/env bash
# Installs what building, testing and demoing vmd needs on Debian 12 (bookworm):
#   qemu-system-x86 + qemu-utils + qemu-block-extra, all of the SAME version,
#   bubblewrap (bwrap: the sandbox qemu-img runs in on uploaded images),
#   ovmf (UEFI guests), systemd (systemd-analyze, for the unit test), socat, curl,
#   xorriso mtools dosfstools fdisk e2fsprogs (scripts/build-test-guest.sh),
#   nftables + dnsmasq-base (lab networks: vmd's firewall table and DHCP), busybox-static
#   (the DHCP client and ping of the networking tests' namespaces),
#   chromium (the browser of vmd-web's UI tests), cargo-nextest, the UI tests' npm packages
#   (`npm ci` in vmd-web/ui-tests; needs Node.js >= 20 and npm, not installed here), and
#   openapi-spec-validator for python3 (vmd-web's OpenAPI test): Debian's
#   python3-openapi-spec-validator where apt has it (not bookworm), else from PyPI with pip.
# Idempotent: when everything is present it changes nothing and runs no `apt-get update`.
# Runs as root, or uses sudo for apt.
#   --run   only what building and running the lab needs (scripts/demo.sh): no chromium,
#           Node.js packages, OpenAPI validator or cargo-nextest
set -euo pipefail

RUN_ONLY=0
if [[ ${1:-} == --run ]]; then
    RUN_ONLY=1
fi

APT_PACKAGES=(qemu-system-x86 qemu-utils qemu-block-extra bubblewrap ovmf systemd socat curl xorriso mtools dosfstools fdisk e2fsprogs nftables dnsmasq-base busybox-static python3 chromium)
# Must carry exactly the version of qemu-system-x86 (a newer preinstalled qemu-utils conflicts).
QEMU_PINNED=(qemu-utils qemu-block-extra)
# What the packages provide, checked on systems without dpkg.
COMMANDS=(qemu-img bwrap qemu-system-x86_64 systemd-analyze socat curl xorriso mformat mkfs.vfat sfdisk mkfs.ext4 nft dnsmasq busybox python3 qemu-io chromium)
if ((RUN_ONLY)); then
    # The last entries of both lists are the tests' browser.
    unset 'APT_PACKAGES[-1]' 'COMMANDS[-1]'
fi

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "not root and no sudo; run as root: $*"
    fi
}

# Prints the installed version of package $1, or nothing.
installed_version() {
    # shellcheck disable=SC2016 # ${...} are dpkg-query fields, not shell expansions
    dpkg-query -W -f='${Status}|${Version}\n' "$1" 2>/dev/null |
        awk -F'|' '$1 == "install ok installed" { print $2 }'
}

# Succeeds when apt has work to do, saying why.
apt_work_needed() {
    local pkg version qemu_version
    for pkg in "${APT_PACKAGES[@]}"; do
        if [[ -z $(installed_version "$pkg") ]]; then
            log "package $pkg is not installed"
            return 0
        fi
    done
    qemu_version=$(installed_version qemu-system-x86)
    for pkg in "${QEMU_PINNED[@]}"; do
        version=$(installed_version "$pkg")
        if [[ $version != "$qemu_version" ]]; then
            log "$pkg $version does not match qemu-system-x86 $qemu_version"
            return 0
        fi
    done
    return 1
}

install_apt_packages() {
    local version others=()
    as_root apt-get update -q
    version=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
    if [[ -z $version || $version == "(none)" ]]; then
        die "apt has no installable qemu-system-x86; check /etc/apt/sources.list*"
    fi
    for pkg in "${APT_PACKAGES[@]}"; do
        case $pkg in
            qemu-system-x86 | qemu-utils | qemu-block-extra) ;;
            *) others+=("$pkg") ;;
        esac
    done
    log "installing qemu $version and ${others[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        --allow-downgrades "qemu-system-x86=$version" "qemu-utils=$version" \
        "qemu-block-extra=$version" "${others[@]}"
}

ensure_system_packages() {
    if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        if apt_work_needed; then
            install_apt_packages
        else
            log "system packages present"
        fi
        return
    fi
    local cmd missing=()
    for cmd in "${COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if ((${#missing[@]} > 0)); then
        die "not a Debian system and missing: ${missing[*]}; install them with your package manager"
    fi
}

# Prints the major version from the first line of `$@ --version`.
qemu_major() {
    "$@" --version | sed -n '1s/^.*version \([0-9][0-9]*\)\..*$/\1/p'
}

check_qemu() {
    local img sys
    img=$(qemu_major qemu-img) || die "qemu-img --version failed"
    sys=$(qemu_major qemu-system-x86_64) || die "qemu-system-x86_64 --version failed"
    [[ -n $img && -n $sys ]] || die "cannot read the QEMU versions (qemu-img: '$img', qemu-system-x86_64: '$sys')"
    if [[ $img != "$sys" ]]; then
        die "qemu-img is version $img but qemu-system-x86_64 is $sys; install matching versions"
    fi
    log "qemu $img: $(qemu-img --version | sed -n 1p)"
}

ensure_nextest() {
    if [[ -d $HOME/.cargo/bin ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust >= 1.85 (https://rustup.rs)"
    if cargo nextest --version >/dev/null 2>&1; then
        log "cargo-nextest present"
    else
        log "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
}

# The user qemu-img runs as on uploaded images (vmd's image_sandbox_user): a system user
# nothing else runs as.
ensure_sandbox_user() {
    if getent passwd vmd-sandbox >/dev/null; then
        log "user vmd-sandbox present"
        return
    fi
    as_root useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin \
        --user-group vmd-sandbox
    log "created system user vmd-sandbox"
}

# The OpenAPI validator vmd-web/tests/openapi.rs runs as `python3 -m openapi_spec_validator`.
ensure_openapi_validator() {
    if python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
        log "openapi-spec-validator present"
        return
    fi
    if apt-cache show python3-openapi-spec-validator >/dev/null 2>&1; then
        log "installing python3-openapi-spec-validator"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            python3-openapi-spec-validator
        return
    fi
    if ! python3 -m pip --version >/dev/null 2>&1; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-pip
    fi
    log "installing openapi-spec-validator from PyPI"
    # Debian's own python3 is "externally managed" (PEP 668); a pyenv or venv python is not.
    python3 -m pip install -q openapi-spec-validator ||
        python3 -m pip install -q --break-system-packages openapi-spec-validator
}

# playwright-core for vmd-web/tests/ui.rs, pinned by vmd-web/ui-tests/package-lock.json.
ensure_ui_test_packages() {
    local dir major
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/vmd-web/ui-tests"
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
        die "node and npm are needed for the browser tests (Node.js >= 20, e.g. from NodeSource)"
    major=$(node --version | sed -n 's/^v\([0-9]*\)\..*$/\1/p')
    [[ -n $major && $major -ge 20 ]] || die "Node.js $(node --version) is too old for playwright-core; need >= 20"
    if [[ -d $dir/node_modules/playwright-core && ! $dir/package-lock.json -nt $dir/node_modules ]]; then
        log "UI test packages present"
        return
    fi
    log "installing the UI test packages (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund)
}

main() {
    ensure_system_packages
    ((RUN_ONLY)) || ensure_openapi_validator
    ensure_sandbox_user
    check_qemu
    if ((RUN_ONLY)); then
        log "done (what running the lab needs)"
        return
    fi
    ensure_nextest
    ensure_ui_test_packages
    log "done"
}

main "$@"
