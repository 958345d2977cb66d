#!/usr/bin/env bash
# Build the vm-lab test guest (a tiny busybox initramfs guest made from Debian
# packages) in two forms:
#   OUTDIR/guest.qcow2  disk: MBR, p1 FAT ESP (syslinux BIOS + systemd-boot
#                       UEFI + kernel + initramfs), p2 ext4 "guestdata"
#   OUTDIR/guest.iso    hybrid ISO: isolinux (BIOS) + systemd-boot (UEFI);
#                       an installer: /install/disk.img.gz is the disk form's
#                       raw image, written to a blank disk by the guest
#                       command `install-to-disk [DEVICE]`
#
# Usage: scripts/build-test-guest.sh [OUTDIR]   (default <repo>/.cache/test-guest)
#
# Cached: .debs live in OUTDIR/debs; when the outputs exist and this script and
# scripts/test-guest/* are unchanged (hash in OUTDIR/stamp) it exits at once.
# Needs root only to apt-get install missing host tools or to run
# `apt-get update` when apt-cache cannot resolve the packages. No loop
# devices, no mount, no network except Debian's apt repositories.
# See OUTDIR/README.txt (from scripts/test-guest/README.txt) for the guest.
set -euo pipefail

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT")
REPO=$(dirname "$SCRIPT_DIR")
HELPERS="$SCRIPT_DIR/test-guest"
OUTDIR=${1:-"$REPO/.cache/test-guest"}
mkdir -p "$OUTDIR"
OUTDIR=$(readlink -f "$OUTDIR")

# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can fail and
# panic the guest ("IO-APIC + timer doesn't work"), seen on reboots with a load of 20 on 2
# cores; the check is meaningless for an emulated machine.
CMDLINE="console=ttyS0,115200 quiet no_timer_check"
ISO_CMDLINE="$CMDLINE guest.form=iso" # rcS: no /data on the ISO form
DISK_MB=256          # virtual size of guest.qcow2
ESP_MB=64            # p1 (FAT), starts at 1 MiB
GUEST_PKGS=(busybox-static syslinux syslinux-common isolinux systemd-boot-efi)

log() { printf 'build-test-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

print_outputs() {
    echo "$OUTDIR/guest.qcow2"
    echo "$OUTDIR/guest.iso"
}

# Hash of everything that determines the output (besides the Debian archive).
inputs_hash() {
    {
        sha256sum "$SCRIPT" | cut -d' ' -f1
        (cd "$HELPERS" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [ -s "$OUTDIR/guest.qcow2" ] && [ -s "$OUTDIR/guest.iso" ] && [ -f "$OUTDIR/stamp" ] &&
        [ "$(head -n1 "$OUTDIR/stamp")" = "$HASH" ]
}

[ -d "$HELPERS" ] || die "missing $HELPERS"
HASH=$(inputs_hash)
if up_to_date; then
    print_outputs
    exit 0
fi

# One builder at a time per OUTDIR (tests may run in parallel).
exec 9>"$OUTDIR/.lock"
flock 9
if up_to_date; then # another process built it while we waited
    print_outputs
    exit 0
fi

T0=$(date +%s.%N)

# ---------------------------------------------------------------- host tools
need_root() {
    [ "$(id -u)" = 0 ] || die "$* (needs root; run once as root or install it yourself)"
}
missing=()
command -v xorriso >/dev/null || missing+=(xorriso)
{ command -v mcopy >/dev/null && command -v mmd >/dev/null; } || missing+=(mtools)
command -v mkfs.fat >/dev/null || missing+=(dosfstools)
command -v sfdisk >/dev/null || missing+=(fdisk)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
for t in apt-get apt-cache dpkg-deb gzip flock sha256sum; do
    command -v "$t" >/dev/null || die "host tool '$t' not found"
done

apt_updated=0
apt_update() {
    [ $apt_updated = 1 ] && return 0
    need_root "apt-get update"
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
}
if [ ${#missing[@]} -gt 0 ]; then
    need_root "missing host packages: ${missing[*]}"
    apt-cache show --no-all-versions "${missing[@]}" >/dev/null 2>&1 || apt_update
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# ---------------------------------------------------------- guest packages
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
KPKG=$(kernel_pkg || true)
if [ -z "$KPKG" ] || ! apt-cache show --no-all-versions "${GUEST_PKGS[@]}" >/dev/null 2>&1; then
    apt_update
    KPKG=$(kernel_pkg || true)
fi
[ -n "$KPKG" ] || die "cannot resolve the kernel package of linux-image-amd64"
PKGS=("$KPKG" "${GUEST_PKGS[@]}")

DEBS="$OUTDIR/debs"
mkdir -p "$DEBS"
tmpuris=$(mktemp -d)
(cd "$tmpuris" && apt-get download --print-uris "${PKGS[@]}") >"$tmpuris/uris" ||
    die "apt-get download --print-uris ${PKGS[*]} failed"
DEB_FILES=()
fetch=()
while read -r _uri file _size hash; do
    [ -n "$file" ] || continue
    DEB_FILES+=("$file")
    want=${hash#SHA256:}
    if [ -f "$DEBS/$file" ] && [ "$(sha256sum "$DEBS/$file" | cut -d' ' -f1)" = "$want" ]; then
        continue
    fi
    rm -f "$DEBS/$file"
    fetch+=("$file")
done <"$tmpuris/uris"
rm -rf "$tmpuris"
[ ${#DEB_FILES[@]} = ${#PKGS[@]} ] || die "could not resolve all of: ${PKGS[*]}"
if [ ${#fetch[@]} -gt 0 ]; then
    log "apt-get download ${fetch[*]}"
    # apt skips files already present with the right hash.
    (cd "$DEBS" && apt-get download -q "${PKGS[@]}") >"$OUTDIR/apt-download.log" 2>&1 || {
        cat "$OUTDIR/apt-download.log" >&2
        die "apt-get download failed"
    }
fi
# Drop stale .debs (older kernels etc.).
for f in "$DEBS"/*.deb; do
    keep=0
    for d in "${DEB_FILES[@]}"; do [ "$(basename "$f")" = "$d" ] && keep=1; done
    [ $keep = 1 ] || rm -f "$f"
done

# ------------------------------------------------------------------ extract
# Scratch space: the kernel package unpacks to ~400 MB in ~4000 files. Use
# tmpfs when there is room (deleting that tree on a disk mounted with
# `discard` alone takes several seconds), else a directory in OUTDIR.
rm -rf "$OUTDIR/.build"
B=
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((1024 * 1024)) ] 2>/dev/null; then
    B=$(mktemp -d /dev/shm/vmlab-test-guest.XXXXXX)
else
    B="$OUTDIR/.build"
    mkdir -p "$B"
fi
trap 'rm -rf "$B"' EXIT
trap 'exit 1' HUP INT TERM
mkdir -p "$B/pkg" "$B/kernel"
for d in "${DEB_FILES[@]}"; do
    case "$d" in
    "$KPKG"_*) dpkg-deb -x "$DEBS/$d" "$B/kernel" ;;
    *) dpkg-deb -x "$DEBS/$d" "$B/pkg" ;;
    esac
done
P="$B/pkg"
BUSYBOX="$P/bin/busybox"
[ -x "$BUSYBOX" ] || die "busybox-static did not provide /bin/busybox"
KVER=$(ls "$B/kernel/lib/modules")
[ "$(echo "$KVER" | wc -l)" = 1 ] || die "expected one kernel in $KPKG, got: $KVER"
VMLINUZ="$B/kernel/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "no vmlinuz in $KPKG"

# ---------------------------------------------------------------- initramfs
# The kernel .deb ships no modules.dep: make one, then copy the wanted modules
# plus their dependencies.
"$BUSYBOX" depmod -b "$B/kernel" "$KVER"
MODDIR="$B/kernel/lib/modules/$KVER"
R="$B/initramfs"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/acpi/PWRF,dev,proc,sys,run,tmp,root,mnt,cdrom,lib/modules/"$KVER"}
chmod 1777 "$R/tmp"
chmod 0700 "$R/root"

want_mods=$(awk '$1 !~ /^(#|$)/ { print $1 }' "$HELPERS/modules" | tr - _ | sort -u)
want_mods="scsi_mod $want_mods" # rcS loads scsi_mod first with scan=sync
# modules.dep lines: "kernel/dir/name.ko: dep.ko ...". Print the wanted
# modules and their dependencies, and "!name" for wanted names not found.
awk -v want="$want_mods" '
    BEGIN { n = split(want, w, /[ \n]+/); for (i = 1; i <= n; i++) if (w[i] != "") W[w[i]] = 1 }
    {
        path = $1; sub(/:$/, "", path)
        b = path; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b)
        if (b in W) { found[b] = 1; print path; for (i = 2; i <= NF; i++) print $i }
    }
    END { for (m in W) if (!(m in found)) print "!" m }
' "$MODDIR/modules.dep" | sort -u >"$B/modules.list"
while read -r m; do
    m=${m#!}
    # built into the kernel is fine too
    grep -qE "/(${m}|${m//_/-})\.ko" "$MODDIR/modules.builtin" ||
        die "kernel module $m not found in $KPKG"
done < <(grep '^!' "$B/modules.list" || true)
(cd "$MODDIR" && grep -v '^!' "$B/modules.list" | xargs cp --parents -t "$R/lib/modules/$KVER/")
cp "$MODDIR/modules.builtin" "$MODDIR/modules.order" "$R/lib/modules/$KVER/"
[ -f "$MODDIR/modules.builtin.modinfo" ] && cp "$MODDIR/modules.builtin.modinfo" "$R/lib/modules/$KVER/"
"$BUSYBOX" depmod -b "$R" "$KVER"

cp "$BUSYBOX" "$R/bin/busybox"
while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    [ "$applet" = linuxrc ] && continue
    [ -d "$R/${applet%/*}" ] || mkdir -p "$R/${applet%/*}"
    ln -s /bin/busybox "$R/$applet"
done < <("$BUSYBOX" --list-full)
ln -sf /bin/busybox "$R/init" # the kernel runs /init -> busybox init
install -m 0644 "$HELPERS/inittab" "$R/etc/inittab"
install -m 0755 "$HELPERS/rcS" "$R/etc/init.d/rcS"
install -m 0755 "$HELPERS/rcK" "$R/etc/init.d/rcK"
install -m 0755 "$HELPERS/serial-shell" "$R/etc/init.d/serial-shell"
install -m 0755 "$HELPERS/acpi/power-button" "$R/etc/acpi/PWRF/00000080"
install -m 0755 "$HELPERS/install-to-disk" "$R/usr/sbin/install-to-disk"
install -m 0755 "$HELPERS/udhcpc.script" "$R/etc/udhcpc.script"
install -m 0755 "$HELPERS/guest-lease" "$R/usr/bin/guest-lease"
install -m 0644 "$HELPERS/profile" "$R/etc/profile"
install -m 0644 "$HELPERS/modules" "$R/etc/modules"
echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
echo "root:x:0:" >"$R/etc/group"
echo "guest" >"$R/etc/hostname"
: >"$R/etc/fstab"
echo "127.0.0.1 localhost" >"$R/etc/hosts"
: >"$R/etc/resolv.conf" # filled by /etc/udhcpc.script
{
    echo "vm-lab test guest"
    echo "kernel: $KPKG ($KVER)"
    echo "built from: ${DEB_FILES[*]}"
} >"$R/etc/guest-release"

INITRD="$B/initrd.img"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -6n >"$INITRD"

# ------------------------------------------------------------ boot configs
subst() { sed "s|@CMDLINE@|$2|g" "$1"; } # FILE CMDLINE
SYSLINUX_BIOS="$P/usr/lib/syslinux/modules/bios"
LDLINUX_C32="$SYSLINUX_BIOS/ldlinux.c32"
SDBOOT="$P/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
MBR_BIN="$P/usr/lib/syslinux/mbr/mbr.bin"
ISOLINUX_BIN="$P/usr/lib/ISOLINUX/isolinux.bin"
ISOHDPFX="$P/usr/lib/ISOLINUX/isohdpfx.bin"
SYSLINUX_INSTALLER="$P/usr/bin/syslinux"
for f in "$LDLINUX_C32" "$SDBOOT" "$MBR_BIN" "$ISOLINUX_BIN" "$ISOHDPFX" "$SYSLINUX_INSTALLER"; do
    [ -f "$f" ] || die "missing $f in the extracted packages"
done
subst "$HELPERS/syslinux.cfg" "$CMDLINE" >"$B/syslinux.cfg"
subst "$HELPERS/loader-entry.conf" "$CMDLINE" >"$B/guest.conf"
subst "$HELPERS/syslinux.cfg" "$ISO_CMDLINE" >"$B/iso-syslinux.cfg"
subst "$HELPERS/loader-entry.conf" "$ISO_CMDLINE" >"$B/iso-guest.conf"

# Fill a FAT image (file) with the systemd-boot ESP layout + kernel/initrd.
fill_esp() { # IMG LOADER-ENTRY
    local img=$1 entry=$2
    mmd -i "$img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
    mcopy -i "$img" "$SDBOOT" ::/EFI/BOOT/BOOTX64.EFI
    mcopy -i "$img" "$HELPERS/loader.conf" ::/loader/loader.conf
    mcopy -i "$img" "$entry" ::/loader/entries/guest.conf
    mcopy -i "$img" "$VMLINUZ" ::/vmlinuz
    mcopy -i "$img" "$INITRD" ::/initrd.img
}
export MTOOLS_SKIP_CHECK=1

# --------------------------------------------------------------- disk form
ESP_SECTORS=$((ESP_MB * 2048))
DATA_START=$((2048 + ESP_SECTORS))
DATA_SECTORS=$((DISK_MB * 2048 - DATA_START))

ESP="$B/esp.img"
mkfs.fat -C -h 2048 -n GUESTBOOT -i 47554553 "$ESP" $((ESP_MB * 1024)) >/dev/null
fill_esp "$ESP" "$B/guest.conf"
mcopy -i "$ESP" "$B/syslinux.cfg" ::/syslinux.cfg
mcopy -i "$ESP" "$LDLINUX_C32" ::/ldlinux.c32
"$SYSLINUX_INSTALLER" --install "$ESP" # mtools installer: ldlinux.sys + boot sector

DATA="$B/data.img"
mkdir -p "$B/data" # empty: the guest creates /data/boot-count on first boot
mkfs.ext4 -q -F -L guestdata -E root_owner=0:0 -d "$B/data" "$DATA" $((DATA_SECTORS / 2))k >/dev/null

RAW="$B/disk.raw"
truncate -s "${DISK_MB}M" "$RAW"
sfdisk -q --no-reread --no-tell-kernel "$RAW" >/dev/null <<EOF
label: dos
label-id: 0x47554553
unit: sectors
start=2048, size=$ESP_SECTORS, type=ef, bootable
start=$DATA_START, size=$DATA_SECTORS, type=83
EOF
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
dd if="$ESP" of="$RAW" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$DATA" of="$RAW" bs=512 seek=$DATA_START conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 "$RAW" "$B/guest.qcow2"

# ---------------------------------------------------------------- ISO form
ISO_ROOT="$B/iso"
mkdir -p "$ISO_ROOT/isolinux" "$ISO_ROOT/boot" "$ISO_ROOT/install"
# The installer's payload (see install-to-disk): the disk form's raw image.
# Mostly zeros, so gzip makes 256 MiB into about the size of kernel+initrd.
gzip -6n <"$RAW" >"$ISO_ROOT/install/disk.img.gz"
stat -c %s "$RAW" >"$ISO_ROOT/install/disk.img.size"
(cd "$B" && sha256sum disk.raw | sed 's/disk\.raw$/disk.img/') >"$ISO_ROOT/install/disk.img.sha256"
rm -f "$RAW" "$ESP" "$DATA"
cp "$ISOLINUX_BIN" "$LDLINUX_C32" "$ISO_ROOT/isolinux/"
cp "$B/iso-syslinux.cfg" "$ISO_ROOT/isolinux/isolinux.cfg"
cp "$VMLINUZ" "$ISO_ROOT/vmlinuz"
cp "$INITRD" "$ISO_ROOT/initrd.img"
# El Torito UEFI image: its sector count is 16-bit, keep it < 32 MiB.
efi_kb=$(($(du -k --apparent-size "$VMLINUZ" | cut -f1) + $(du -k --apparent-size "$INITRD" | cut -f1) +
    $(du -k --apparent-size "$SDBOOT" | cut -f1) + 1024))
efi_kb=$(((efi_kb + 1023) / 1024 * 1024))
[ $efi_kb -lt 32768 ] || die "UEFI El Torito image would be ${efi_kb} KiB (>= 32 MiB)"
mkfs.fat -C -n GUESTEFI -i 47554554 "$ISO_ROOT/boot/efi.img" $efi_kb >/dev/null
fill_esp "$ISO_ROOT/boot/efi.img" "$B/iso-guest.conf"
xorriso -as mkisofs -quiet -o "$B/guest.iso" -r -J -V GUEST_ISO \
    -isohybrid-mbr "$ISOHDPFX" \
    -c isolinux/boot.cat -b isolinux/isolinux.bin \
    -no-emul-boot -boot-load-size 4 -boot-info-table \
    -eltorito-alt-boot -e boot/efi.img -no-emul-boot -isohybrid-gpt-basdat \
    "$ISO_ROOT" 2>"$B/xorriso.log" || {
    cat "$B/xorriso.log" >&2
    die "xorriso failed"
}

# ------------------------------------------------------------------ install
# Copy next to the target, then rename into place: readers never see a
# partial file, and a QEMU that has the old base open keeps its inode.
cp "$VMLINUZ" "$B/vmlinuz"
for f in vmlinuz initrd.img guest.iso guest.qcow2; do
    cp "$B/$f" "$OUTDIR/.new.$f"
    mv -f "$OUTDIR/.new.$f" "$OUTDIR/$f"
done
{
    cat "$HELPERS/README.txt"
    echo
    echo "Built $(date -u +%Y-%m-%dT%H:%M:%SZ) from:"
    for d in "${DEB_FILES[@]}"; do echo "  $d"; done
    echo "kernel $KVER, modules: $(cd "$R/lib/modules/$KVER" && find . -name '*.ko*' | wc -l)"
} >"$OUTDIR/README.txt"
{
    echo "$HASH"
    echo "kernel=$KPKG"
    printf 'deb=%s\n' "${DEB_FILES[@]}"
} >"$OUTDIR/stamp"
rm -rf "$B"
rm -f "$OUTDIR/apt-download.log"
trap - EXIT

T1=$(date +%s.%N)
log "built in $(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }') s (kernel $KVER)"
print_outputs
