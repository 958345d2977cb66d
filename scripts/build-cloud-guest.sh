#!/usr/bin/env bash
# Build the vm-lab cloud test guest: a real Debian 12 (bookworm) with
# cloud-init (NoCloud), qemu-guest-agent and OpenSSH, made with mmdebstrap
# from Debian packages:
#   OUTDIR/debian12.qcow2  2 GiB virtual disk: MBR, p1 FAT "CLOUDBOOT"
#                          (syslinux + kernel + initramfs), p2 ext4 "cloudroot"
#                          (the root, last and small so growpart can grow it)
#
# Usage: scripts/build-cloud-guest.sh [OUTDIR]   (default <repo>/.cache/cloud-guest)
#
# Cached: when the output exists and this script and scripts/cloud-guest/* are
# unchanged (hash in OUTDIR/stamp) it prints the path and exits at once. The
# downloaded .debs are kept in OUTDIR/debs for the next build. One builder per
# OUTDIR at a time (flock). Needs root (mmdebstrap's root mode; apt-get
# install of missing host tools). No loop devices, no mounts of images, no
# network except Debian's apt repositories. Prints the output path on stdout,
# logs on stderr. See OUTDIR/README.txt and docs/testing.md for the guest.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT")
REPO=$(dirname "$SCRIPT_DIR")
HELPERS="$SCRIPT_DIR/cloud-guest"
OUTDIR=${1:-"$REPO/.cache/cloud-guest"}
mkdir -p "$OUTDIR"
OUTDIR=$(readlink -f "$OUTDIR")

SUITE=bookworm
MIRRORS=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)
GUEST_PKGS=(
    linux-image-amd64 initramfs-tools systemd-sysv udev dbus
    openssh-server openssh-sftp-server cloud-init cloud-guest-utils fdisk
    qemu-guest-agent e2fsprogs iproute2 sudo ifupdown isc-dhcp-client netbase
    procps less
)
DISK_MB=2048 # virtual size of debian12.qcow2
BOOT_MB=128  # p1 (FAT), starts at 1 MiB
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check
# can fail and panic the guest; meaningless for an emulated machine.
CMDLINE_TAIL="ro console=tty0 console=ttyS0,115200n8 no_timer_check"

log() { printf 'build-cloud-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

OUT="$OUTDIR/debian12.qcow2"

# Hash of everything that determines the output (besides the Debian archive).
inputs_hash() {
    {
        sha256sum "$SCRIPT" | cut -d' ' -f1
        (cd "$HELPERS" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -s "$OUT" ] && [ -f "$OUTDIR/stamp" ] && [ "$(head -n1 "$OUTDIR/stamp")" = "$HASH" ]
}

[ -d "$HELPERS" ] || die "missing $HELPERS"
HASH=$(inputs_hash)
if up_to_date; then
    echo "$OUT"
    exit 0
fi

# One builder at a time per OUTDIR (tests may run in parallel).
exec 9>"$OUTDIR/.lock"
flock 9
if up_to_date; then # another process built it while we waited
    echo "$OUT"
    exit 0
fi

T0=$(date +%s.%N)
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap root mode, files owned by root in the image)"

# ---------------------------------------------------------------- host tools
missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v syslinux >/dev/null || missing+=(syslinux)
[ -f /usr/lib/syslinux/mbr/mbr.bin ] && [ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] ||
    missing+=(syslinux-common)
{ command -v mcopy >/dev/null && command -v mmd >/dev/null; } || missing+=(mtools)
command -v mkfs.fat >/dev/null || missing+=(dosfstools)
command -v sfdisk >/dev/null || missing+=(fdisk)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
for t in apt-get apt-cache flock sha256sum; do
    command -v "$t" >/dev/null || die "host tool '$t' not found"
done
if [ ${#missing[@]} -gt 0 ]; then
    if ! apt-cache show --no-all-versions "${missing[@]}" >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -qq -o DPkg::Lock::Timeout=300 >&2
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2
fi

# ------------------------------------------------------------------ scratch
# The root tree is ~1 GB in ~30000 files: build it on tmpfs when there is room.
rm -rf "$OUTDIR/.build"
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((4 * 1024 * 1024)) ] 2>/dev/null; then
    B=$(mktemp -d /dev/shm/vmlab-cloud-guest.XXXXXX)
else
    B="$OUTDIR/.build"
    mkdir -p "$B"
fi
trap 'rm -rf "$B"' EXIT
trap 'exit 1' HUP INT TERM
ROOT="$B/root"
DEBS="$OUTDIR/debs"
mkdir -p "$DEBS"

# -------------------------------------------------------------- mmdebstrap
dpkgopts=()
while read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    dpkgopts+=(--dpkgopt="$line")
done <"$HELPERS/dpkg-excludes"

log "mmdebstrap $SUITE (${GUEST_PKGS[*]})"
# The .debs of the last build are copied in before the download and copied out
# after the install (download/empty is skipped so apt leaves them in place);
# then the image's copy is dropped.
mmdebstrap --mode=root --variant=apt --format=directory \
    --include="$(IFS=,; echo "${GUEST_PKGS[*]}")" \
    "${dpkgopts[@]}" \
    --aptopt='Acquire::Languages "none"' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
    --setup-hook="sync-in '$DEBS' /var/cache/apt/archives" \
    --customize-hook="sync-out /var/cache/apt/archives '$DEBS'" \
    --customize-hook="copy-in '$HELPERS/90-vmlab.cfg' /etc/cloud/cloud.cfg.d" \
    --customize-hook='mkdir -p "$1"/etc/systemd/system/ssh.service.d' \
    --customize-hook="upload '$HELPERS/ssh-cloud-guest.conf' /etc/systemd/system/ssh.service.d/cloud-guest.conf" \
    "$SUITE" "$ROOT" "${MIRRORS[@]}" >"$B/mmdebstrap.log" 2>&1 || {
    tail -n 60 "$B/mmdebstrap.log" >&2
    die "mmdebstrap failed"
}
# Keep only the newest .deb of each package in the cache.
(cd "$DEBS" && ls -1 ./*.deb 2>/dev/null | sed 's|^\./||' | awk -F_ '{ print $1 }' | sort | uniq -d |
    while read -r p; do ls -1v "${p}"_*.deb | head -n -1 | xargs -r rm -f; done) || true
T1=$(date +%s.%N)

# ---------------------------------------------------------------- generalize
# No machine identity in the image: systemd makes /etc/machine-id at first
# boot (empty file = first boot), cloud-init makes the SSH host keys.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT"/etc/ssh/ssh_host_*
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
rm -rf "$ROOT"/var/lib/cloud/* "$ROOT"/var/log/*.log "$ROOT"/tmp/* "$ROOT"/var/tmp/*
mkdir -p "$ROOT/var/lib/apt/lists/partial"
echo "localhost" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# root has no password ('*' from base-passwd): access only via cloud-init users.
grep -q '^root:\*:' "$ROOT/etc/shadow" || sed -i 's/^root:[^:]*:/root:*:/' "$ROOT/etc/shadow"
# No default user ("debian"): drop `users: [default]` from cloud.cfg.
sed -i '/^users:$/{N;/\n *- default$/d}' "$ROOT/etc/cloud/cloud.cfg"
! grep -q '^users:' "$ROOT/etc/cloud/cloud.cfg" || die "cannot drop the default user from cloud.cfg"
# cloud-init's locale module leaves a set C.UTF-8 alone (no `locales` package).
echo 'LANG=C.UTF-8' >"$ROOT/etc/default/locale"
# The network: ifupdown; cloud-init writes /etc/network/interfaces.d/50-cloud-init
# (DHCP on the first NIC when the seed has no network-config).
grep -q 'interfaces.d' "$ROOT/etc/network/interfaces" ||
    echo 'source /etc/network/interfaces.d/*' >>"$ROOT/etc/network/interfaces"

KVERS=$(ls "$ROOT/lib/modules")
[ "$(echo "$KVERS" | wc -l)" = 1 ] || die "expected one kernel, got: $KVERS"
KVER=$KVERS
VMLINUZ="$ROOT/boot/vmlinuz-$KVER"
INITRD="$ROOT/boot/initrd.img-$KVER"
[ -f "$VMLINUZ" ] && [ -f "$INITRD" ] || die "no kernel/initramfs for $KVER in /boot"

ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s\t/\text4\terrors=remount-ro,discard\t0\t1\n' "$ROOT_UUID" >"$ROOT/etc/fstab"
{
    echo "vm-lab cloud guest: Debian 12 ($SUITE), kernel $KVER"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) by scripts/build-cloud-guest.sh"
} >"$ROOT/etc/cloud-guest-release"

# ------------------------------------------------------------------- disks
export MTOOLS_SKIP_CHECK=1
BOOT_SECTORS=$((BOOT_MB * 2048))
ROOT_START=$((2048 + BOOT_SECTORS))
used_mb=$(du -sxm "$ROOT" | cut -f1)
# Room for the first boot's logs and a package or two; the test grows it.
ROOT_MB=$(((used_mb * 5 / 4 + 256 + 63) / 64 * 64))
[ $((ROOT_START / 2048 + ROOT_MB)) -lt $DISK_MB ] || die "root of $ROOT_MB MiB does not fit $DISK_MB MiB"
log "root tree ${used_mb} MiB -> ext4 of ${ROOT_MB} MiB"

sed "s|@CMDLINE@|root=UUID=$ROOT_UUID $CMDLINE_TAIL|g" "$HELPERS/syslinux.cfg" >"$B/syslinux.cfg"
BOOTIMG="$B/boot.img"
mkfs.fat -C -h 2048 -n CLOUDBOOT "$BOOTIMG" $((BOOT_MB * 1024)) >/dev/null
mcopy -i "$BOOTIMG" "$B/syslinux.cfg" ::/syslinux.cfg
mcopy -i "$BOOTIMG" /usr/lib/syslinux/modules/bios/ldlinux.c32 ::/ldlinux.c32
mcopy -i "$BOOTIMG" "$VMLINUZ" ::/vmlinuz
mcopy -i "$BOOTIMG" "$INITRD" ::/initrd.img
syslinux --install "$BOOTIMG" # mtools installer: ldlinux.sys + boot sector

dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '  ${Package} ${Version}\n' \
    "${GUEST_PKGS[@]}" "linux-image-$KVER" >"$B/packages"
ROOTIMG="$B/root.img"
mkfs.ext4 -q -F -L cloudroot -U "$ROOT_UUID" -d "$ROOT" "$ROOTIMG" "${ROOT_MB}M" >/dev/null
rm -rf "$ROOT"

RAW="$B/disk.raw"
truncate -s "${DISK_MB}M" "$RAW"
sfdisk -q --no-reread --no-tell-kernel "$RAW" >/dev/null <<EOF
label: dos
unit: sectors
start=2048, size=$BOOT_SECTORS, type=c, bootable
start=$ROOT_START, size=$((ROOT_MB * 2048)), type=83
EOF
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none
dd if="$BOOTIMG" of="$RAW" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$RAW" bs=512 seek=$ROOT_START conv=notrunc,sparse status=none
rm -f "$BOOTIMG" "$ROOTIMG"
qemu-img convert -f raw -O qcow2 "$RAW" "$B/debian12.qcow2"
rm -f "$RAW"

# ------------------------------------------------------------------ install
# Copy next to the target, then rename into place: readers never see a
# partial file, and a QEMU that has the old base open keeps its inode.
cp "$B/debian12.qcow2" "$OUTDIR/.new.debian12.qcow2"
mv -f "$OUTDIR/.new.debian12.qcow2" "$OUT"
{
    cat "$HELPERS/README.txt"
    echo
    echo "Built $(date -u +%Y-%m-%dT%H:%M:%SZ): kernel $KVER, root UUID $ROOT_UUID, ext4 ${ROOT_MB} MiB"
    echo "Packages:"
    cat "$B/packages"
} >"$OUTDIR/README.txt"
{
    echo "$HASH"
    echo "kernel=$KVER"
    echo "root_uuid=$ROOT_UUID"
} >"$OUTDIR/stamp"
rm -rf "$B"
trap - EXIT

T2=$(date +%s.%N)
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log "built in $(secs "$T0" "$T2") s (mmdebstrap $(secs "$T0" "$T1") s, disk $(secs "$T1" "$T2") s; kernel $KVER)"
echo "$OUT"
