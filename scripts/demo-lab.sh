# The lab mode of scripts/demo.sh (sourced by it, not run alone): vmd-web in front of the
# demo's vmd on loopback, a base image and an installer ISO, a demo admin and a demo user
# with random passwords, then either a wait for Ctrl-C or (--check) a check of both logins
# over HTTP. Uses demo.sh's variables (ROOT, WORK, SOCK, VMCTL_BIN, WEB_BIN, PORT) and
# functions (start_vmd, log, die, vmctl); the EXIT trap in demo.sh removes everything.

WEB_URL=
ADMIN_NAME=admin
STUDENT_NAME=student

# A random password of 16 letters and digits.
new_password() {
    local pw
    pw=$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    printf '%s\n' "${pw:0:16}"
}

# Starts vmd-web on 127.0.0.1:$PORT and sets WEB_URL from the address it prints.
start_web() {
    : >"$WORK/vmd-web.out"
    setsid "$WEB_BIN" --socket "$SOCK" --listen "127.0.0.1:$PORT" \
        >"$WORK/vmd-web.out" 2>>"$WORK/vmd-web.log" &
    WEB_PID=$!
    local deadline=$((SECONDS + 30)) addr=
    until addr=$(grep -Eom1 '127\.0\.0\.1:[0-9]+' "$WORK/vmd-web.out"); do
        if ! kill -0 "$WEB_PID" 2>/dev/null; then
            tail -n 5 "$WORK/vmd-web.log" >&2
            die "vmd-web exited at start (port $PORT in use? try --port 0)"
        fi
        ((SECONDS < deadline)) || die "vmd-web printed no address within 30 s"
        sleep 0.1
    done
    WEB_URL=http://$addr/
    log "vmd-web (pid $WEB_PID) serves $WEB_URL"
}

# The test guest as a public base, with an OS family and a description when vmctl has them,
# and its installer ISO for trying "create a base from an ISO" in the admin view.
add_images() {
    local guest=$ROOT/.cache/test-guest
    vmctl -q image import "$guest/guest.qcow2" --name tiny-linux >/dev/null
    if vmctl image set --help >/dev/null 2>&1; then
        vmctl -q image set tiny-linux --os linux \
            --description "vmd's tiny test guest: BusyBox on Debian's kernel, boots in about 10 s" >/dev/null
    fi
    vmctl -q iso upload "$guest/guest.iso" --name tiny-installer >/dev/null
    log "base image tiny-linux and ISO tiny-installer added"
}

# Adds the demo admin and the demo user (3 VMs, 2 running at once) with random passwords.
add_accounts() {
    ADMIN_PASSWORD=$(new_password)
    STUDENT_PASSWORD=$(new_password)
    printf '%s\n' "$ADMIN_PASSWORD" | vmctl -q user add "$ADMIN_NAME" --admin --password-stdin >/dev/null
    printf '%s\n' "$STUDENT_PASSWORD" | vmctl -q user add "$STUDENT_NAME" --password-stdin >/dev/null
    vmctl -q user set "$STUDENT_NAME" --max-vms 3 --max-running 2 >/dev/null
}

# Logs in over HTTP as $1 with password $2 and prints `GET /api/v1/me`'s answer.
http_me() {
    local jar=$WORK/jar-$1
    # The password goes on stdin (not curl's command line, which `ps` shows), the session
    # cookie into a file only root reads.
    (umask 077 && printf '{"user":"%s","password":"%s"}' "$1" "$2" |
        curl -sf -c "$jar" -H 'content-type: application/json' -d @- "${WEB_URL}api/v1/login" >/dev/null) ||
        die "logging in as $1 at ${WEB_URL}api/v1/login failed"
    curl -sf -b "$jar" "${WEB_URL}api/v1/me"
}

# What a newcomer's browser would do first: the page, both logins, the base in the list.
check_lab() {
    curl -sf "$WEB_URL" | grep -q '<title>' || die "$WEB_URL does not serve the UI"
    http_me "$ADMIN_NAME" "$ADMIN_PASSWORD" | grep -q '"role":"admin"' || die "$ADMIN_NAME is not an admin"
    http_me "$STUDENT_NAME" "$STUDENT_PASSWORD" | grep -q '"role":"user"' || die "$STUDENT_NAME is not a user"
    curl -sf -b "$WORK/jar-$STUDENT_NAME" "${WEB_URL}api/v1/images" | grep -q '"name":"tiny-linux"' ||
        die "$STUDENT_NAME does not see the base tiny-linux"
    log "check passed: the UI is served, both accounts log in, the base is listed"
}

print_welcome() {
    local port=${WEB_URL##*:}
    port=${port%/}
    cat <<EOF

==========================================================================
  The lab is up. Open $WEB_URL in a browser on this machine
  (from another machine: ssh -L $port:127.0.0.1:$port THIS-HOST, then the same URL).

    admin:  $ADMIN_NAME / $ADMIN_PASSWORD
            Admin view: ISOs (tiny-installer), base images, users, every VM
    user:   $STUDENT_NAME / $STUDENT_PASSWORD
            pick tiny-linux, name a VM, start it, open its console (3 VMs, 2 running)

  The CLI, as root:  VMD_SOCKET=$SOCK $VMCTL_BIN ls --all
  Press Ctrl-C to stop every VM and remove everything the demo started.
==========================================================================

EOF
}

# Brings the lab up; with --check, checks it and returns, else waits for Ctrl-C (or for vmd
# or vmd-web to exit, which is an error).
lab() {
    start_vmd
    add_images
    add_accounts
    start_web
    if [[ ${1:-} == --check ]]; then
        check_lab
        return
    fi
    print_welcome
    local status=0
    wait -n "$VMD_PID" "$WEB_PID" || status=$?
    die "a lab process exited (status $status); see $LOG and $WORK/vmd-web.log"
}
