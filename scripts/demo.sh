#!/usr/bin/env bash
# The README's "set up and run" command: brings up the whole lab for a newcomer. Installs
# dependencies (scripts/setup.sh), builds release binaries and the project's tiny test guest,
# starts a private vmd (temporary socket and state directory) and vmd-web on loopback, adds a
# base image (the test guest) and the guest's installer ISO, a demo admin and a demo user
# with random passwords, prints them with the URL to open, and stays up until Ctrl-C; then it
# stops every VM and removes everything it started.
#
#   ./scripts/demo.sh              the lab, until Ctrl-C
#   ./scripts/demo.sh --port N     vmd-web on 127.0.0.1:N (default 8080; 0 picks a free port)
#   ./scripts/demo.sh --check      bring the lab up, check both logins over HTTP, tear down
#   ./scripts/demo.sh --tour       the command-line walkthrough instead: import a base, create
#                                  VMs as overlays, boot three guests at once, read their
#                                  consoles, kill -9 vmd and show the guests are re-adopted,
#                                  stop, wipe, remove, and the JSON-RPC API with curl
#   --debug                        use the debug build (target/debug) instead of release
#   --no-setup                     skip scripts/setup.sh (dependencies already installed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=lab PORT=8080 PROFILE=release SETUP=1
while (($#)); do
    case $1 in
    --tour) MODE=tour ;;
    --check) MODE=check ;;
    --port) PORT=${2:?--port needs a number}; shift ;;
    --debug) PROFILE=debug ;;
    --no-setup) SETUP=0 ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'demo: unknown argument %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done

if ((SETUP)); then
    bash scripts/setup.sh --run
fi
if [[ -d $HOME/.cargo/bin ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
if [[ $PROFILE == release ]]; then
    cargo build --release --bins
else
    cargo build --bins
fi
bash scripts/build-test-guest.sh >/dev/null

VMD_BIN=$ROOT/target/$PROFILE/vmd
VMCTL_BIN=$ROOT/target/$PROFILE/vmctl
WEB_BIN=$ROOT/target/$PROFILE/vmd-web
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmd-demo.XXXXXX")
# Searchable (not listable) like /var/lib: the image sandbox user must reach the state dir.
chmod 711 "$WORK"
SOCK=$WORK/vmd.sock
LOG=$WORK/vmd.log
VMD_PID=
WEB_PID=
DEMO_USER=
export VMD_SOCKET=$SOCK

log() { printf '\ndemo: %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local status=$?
    # Nothing may cut the clean-up short: not a second Ctrl-C, a TERM, or a failing command.
    trap '' INT TERM
    set +e
    if [[ -n $WEB_PID ]]; then
        kill -TERM "$WEB_PID" 2>/dev/null
        wait "$WEB_PID" 2>/dev/null
    fi
    if [[ -n $VMD_PID ]] && kill -0 "$VMD_PID" 2>/dev/null; then
        for vm in $("$VMCTL_BIN" ls --all -q 2>/dev/null); do
            "$VMCTL_BIN" -q stop --force "$vm" 2>/dev/null
        done
        kill -TERM "$VMD_PID" 2>/dev/null
        wait "$VMD_PID" 2>/dev/null
    fi
    # Guests outlive vmd by design: a QEMU still running on this demo's files (vmd was
    # killed, or died) is killed here before its files go.
    kill_leftover_guests
    if [[ -n $DEMO_USER ]]; then
        userdel "$DEMO_USER" 2>/dev/null
    fi
    if ((status != 0)) && [[ -f $LOG ]]; then
        printf '\ndemo: failed; last lines of the vmd log:\n' >&2
        tail -n 20 "$LOG" >&2
    fi
    rm -rf "$WORK"
}

# Kills (SIGKILL) every process whose command line names a file under $WORK, and waits
# (up to 10 s) until they are gone.
kill_leftover_guests() {
    pkill -KILL -f -- "$WORK/" 2>/dev/null || return 0
    local deadline=$((SECONDS + 10))
    while pgrep -f -- "$WORK/" >/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
}
trap cleanup EXIT
# Ctrl-C (or a TERM) ends the lab through the EXIT trap's cleanup.
trap 'printf "\ndemo: stopping the lab and removing everything it started\n" >&2; exit 0' INT TERM

# Prints a command the way a user would type it, then runs it.
vmctl() { "$VMCTL_BIN" "$@"; }
run() {
    printf '\n$ %s\n' "$*"
    "$@"
}

# Waits until VM $1's console log shows the guest's ready marker.
wait_ready() {
    local deadline=$((SECONDS + 180))
    until "$VMCTL_BIN" logs "$1" | grep -q "GUEST-READY $1"; do
        ((SECONDS < deadline)) || die "$1 did not boot within 180 s"
        sleep 0.5
    done
}

start_vmd() {
    # Our own config file, so a system-wide /etc/vmd/vmd.toml does not change the demo. The
    # tour opens the socket to every local user (it shows a second local account; vmd
    # authorizes each call by the caller's uid); the lab keeps vmd's default mode, since its
    # people come through vmd-web.
    : >"$WORK/vmd.toml"
    if [[ $MODE == tour ]]; then
        echo 'socket_mode = "0666"' >"$WORK/vmd.toml"
    fi
    # Its own session: a Ctrl-C in the terminal reaches this script, which stops the VMs
    # through vmd before stopping vmd, instead of reaching vmd first.
    setsid "$VMD_BIN" --socket "$SOCK" --state-dir "$WORK/state" --config "$WORK/vmd.toml" \
        --log-format text --log-level info >>"$LOG" 2>&1 &
    VMD_PID=$!
    local deadline=$((SECONDS + 30))
    until "$VMCTL_BIN" -q status >/dev/null 2>&1; do
        kill -0 "$VMD_PID" 2>/dev/null || die "vmd exited before creating its socket"
        ((SECONDS < deadline)) || die "vmd did not create $SOCK within 30 s"
        sleep 0.1
    done
    log "vmd (pid $VMD_PID) serves $SOCK, state in $WORK/state"
}

stop_vmd() {
    log "stopping vmd (SIGTERM to pid $VMD_PID)"
    kill -TERM "$VMD_PID"
    local status=0
    wait "$VMD_PID" || status=$?
    VMD_PID=
    log "vmd exited with status $status; its log:"
    sed 's/^/  | /' "$LOG"
}

# Prints the path of a disk image to import: the test guest if it was built, else a small
# raw disk whose MBR boot signature makes it recognisable as a disk.
demo_disk() {
    local guest=$ROOT/.cache/test-guest/guest.qcow2
    if [[ -f $guest ]]; then
        printf '%s\n' "$guest"
        return
    fi
    local disk=$WORK/disk.img
    qemu-img create -q -f raw "$disk" 64M
    printf '\x55\xaa' | dd of="$disk" bs=1 seek=510 conv=notrunc status=none
    printf '%s\n' "$disk"
}

# A second local account: vmd registers it on its first call as a plain user, who sees and
# touches only their own VMs; root (an admin) sees everyone's with --all.
another_user() {
    DEMO_USER=vmddemo$$
    useradd -M -s /bin/sh "$DEMO_USER"
    as_demo_user() { runuser -u "$DEMO_USER" -- "$VMCTL_BIN" --socket "$SOCK" "$@"; }
    log "a second local user, $DEMO_USER, sees none of root's VMs and cannot touch them:"
    run as_demo_user whoami
    run as_demo_user create theirs --image demo-base --memory 128M
    run as_demo_user ls
    as_demo_user ls -q | grep -qx web1 && die "$DEMO_USER can see web1"
    local status=0
    run as_demo_user stop web1 || status=$?
    ((status == 3)) || die "expected exit code 3 (not found), got $status"
    log "root is an admin: every user's VMs, with their OWNER:"
    run vmctl ls --all
}

tour() {
    start_vmd
    local disk
    disk=$(demo_disk)

    run vmctl status
    run vmctl image import "$disk" --name demo-base
    run vmctl image ls
    run vmctl create web1 --image demo-base --memory 256M
    run vmctl create web2 --image demo-base --cpus 2 --memory 256M
    run vmctl create db1 --image demo-base --memory 256M
    run vmctl ls

    log "removing a base that VMs use is refused (exit code 4):"
    local status=0
    run vmctl image rm demo-base || status=$?
    ((status == 4)) || die "expected exit code 4, got $status"

    log "starting three guests at once (TCG: each boots in about 10 s):"
    local pids=()
    for vm in web1 web2 db1; do
        vmctl -q start "$vm" &
        pids+=($!)
    done
    wait "${pids[@]}"
    run vmctl ls
    for vm in web1 web2 db1; do wait_ready "$vm"; done
    run vmctl logs web1 --tail 400
    echo
    log "a command on web1's serial console, piped (vmctl console):"
    echo 'echo "hello from $(hostname), boot $(cat /data/boot-count)"' | run vmctl console web1 --linger 2

    log "kill -9 vmd while the guests run; they keep running and the next vmd re-adopts them:"
    kill -KILL "$VMD_PID"
    wait "$VMD_PID" 2>/dev/null || true
    start_vmd
    run vmctl ls
    grep 're-adopted' "$LOG" || true

    run vmctl stop web1
    run vmctl stop --force web2
    run vmctl stop --force db1
    run vmctl wipe web1
    run vmctl rm db1
    run vmctl ls
    another_user
    run vmctl events --since 0
    run vmctl status

    log "the same API over plain HTTP JSON-RPC with curl:"
    run curl -s --unix-socket "$SOCK" http://localhost/ -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"vm.list"}'
    echo
    run curl -s --unix-socket "$SOCK" http://localhost/ -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":2,"method":"vm.get","params":["nope"]}'
    echo

    stop_vmd
    log "done"
}

# shellcheck source=scripts/demo-lab.sh
source "$ROOT/scripts/demo-lab.sh"

case $MODE in
tour) tour ;;
lab) lab ;;
check) lab --check ;;
esac
