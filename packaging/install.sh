#!/usr/bin/env bash
# Installs a release build of vmd system-wide on a systemd host (Debian 12 and similar):
#   target/release/{vmd,vmctl,vmd-web} -> /usr/bin/
#   systemd/vmd.service         -> /lib/systemd/system/vmd.service
#   systemd/vmd-web.service     -> /lib/systemd/system/vmd-web.service (not enabled)
#   systemd/vmd.sysusers        -> /usr/lib/sysusers.d/vmd.conf
#   README.md, docs/*.md        -> /usr/share/doc/vmd/
#   packaging/vmd.toml.example  -> /etc/vmd/vmd.toml (only if absent; socket_group = "vmd")
# and creates the group `vmd`. Run from the source tree after `cargo build --release`:
#   sudo packaging/install.sh
# With DESTDIR=/some/root it only copies files below that root (for building packages):
# no group is created and systemd is not reloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

DESTDIR=${DESTDIR:-}

log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

check_prerequisites() {
    local bin
    for bin in vmd vmctl vmd-web; do
        [[ -x target/release/$bin ]] || die "target/release/$bin is missing; run 'cargo build --release' first"
    done
    if [[ -z $DESTDIR && $(id -u) -ne 0 ]]; then
        die "run as root (sudo $0), or set DESTDIR to stage the files"
    fi
}

install_files() {
    install -D -m 0755 target/release/vmd "$DESTDIR/usr/bin/vmd"
    install -D -m 0755 target/release/vmctl "$DESTDIR/usr/bin/vmctl"
    install -D -m 0755 target/release/vmd-web "$DESTDIR/usr/bin/vmd-web"
    install -D -m 0644 systemd/vmd.service "$DESTDIR/lib/systemd/system/vmd.service"
    install -D -m 0644 systemd/vmd-web.service "$DESTDIR/lib/systemd/system/vmd-web.service"
    install -D -m 0644 systemd/vmd.sysusers "$DESTDIR/usr/lib/sysusers.d/vmd.conf"
    install -d -m 0755 "$DESTDIR/usr/share/doc/vmd"
    install -m 0644 README.md docs/*.md "$DESTDIR/usr/share/doc/vmd/"
    install -D -m 0644 packaging/vmd.toml.example "$DESTDIR/usr/share/doc/vmd/vmd.toml.example"
    log "installed binaries, unit, sysusers snippet and docs under ${DESTDIR:-/}"
}

install_config() {
    local config=$DESTDIR/etc/vmd/vmd.toml
    if [[ -e $config ]]; then
        log "keeping existing $config"
        return
    fi
    install -d -m 0755 "$DESTDIR/etc/vmd"
    sed 's/^# socket_group = "vmd"$/socket_group = "vmd"/' packaging/vmd.toml.example >"$config"
    chmod 0644 "$config"
    log "wrote $config (socket_group = \"vmd\")"
}

create_group() {
    if getent group vmd >/dev/null && getent passwd vmd-sandbox >/dev/null; then
        log "group vmd and user vmd-sandbox exist"
    elif command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/vmd.conf
        log "created group vmd and user vmd-sandbox (systemd-sysusers)"
    else
        getent group vmd >/dev/null || groupadd --system vmd
        getent passwd vmd-sandbox >/dev/null ||
            useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin --user-group vmd-sandbox
        log "created group vmd and user vmd-sandbox (groupadd/useradd)"
    fi
}

reload_systemd() {
    # /run/systemd/system exists exactly when systemd is PID 1 (sd_booted(3)).
    if [[ -d /run/systemd/system ]]; then
        systemctl daemon-reload
        log "systemd reloaded"
    else
        log "systemd is not PID 1; skipping daemon-reload"
    fi
}

main() {
    check_prerequisites
    install_files
    install_config
    if [[ -z $DESTDIR ]]; then
        create_group
        reload_systemd
        log "next: systemctl enable --now vmd; usermod -aG vmd USER (then log in again)"
    fi
}

main "$@"
