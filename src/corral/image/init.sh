#!/bin/sh
# PID 1 of Corral's tiny guest: a heartbeat on the serial console, a clean power-off on the
# ACPI power button, an optional counter written to the first disk, optional busy loops
# (`burn N`), and a shell on the serial console once someone presses Enter there.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Modules not built into the kernel, listed by the image builder in dependency order.
while read -r module; do
    insmod "$module" 2>/dev/null
done </etc/corral-modules

# The ACPI button driver reports presses as key events on its input device; any event
# there means QEMU's system_powerdown. The device is opened here, before the first
# heartbeat, because evdev drops events that arrive while nobody has it open.
for dev in /sys/class/input/event*; do
    if [ "$(cat "$dev/device/name" 2>/dev/null)" = "Power Button" ]; then
        exec 3<"/dev/input/${dev##*/}"
        (
            head -c 1 <&3 >/dev/null
            echo "corral-guest: power button, powering off"
            sync
            poweroff -f
        ) &
        exec 3<&-
    fi
done

diskmark=0
if [ -b /dev/vda ]; then
    echo "corral-disk: present"
    case " $(cat /proc/cmdline) " in
        *" corral.diskmark=1 "*) diskmark=1 ;;
    esac
fi

# corral.memfill=<MiB>: keep that much random data in memory, as a busy guest would, so a
# migration has real pages to move (an idle tiny guest's memory is almost all zeros).
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        corral.memfill=*) fill=${arg#corral.memfill=} ;;
    esac
done
if [ -n "$fill" ]; then
    mkdir -p /fill
    mount -t tmpfs -o "size=${fill}m" tmpfs /fill
    dd if=/dev/urandom of=/fill/data bs=1M count="$fill" 2>/dev/null
    echo "corral-memfill: $fill MiB"
fi

# burn N: keep N busy loops running (0 stops them), so tests and load-balancing trials get a
# guest whose CPU demand they choose. Written here so that the image's hash (of this script)
# covers it. The loops ignore SIGHUP: leaving the console's shell does not end them.
cat >/bin/burn <<'BURN'
#!/bin/sh
case "$1" in
    ''|*[!0-9]*) echo "usage: burn N (busy loops to keep running; 0 stops them)" >&2; exit 2 ;;
esac
[ -f /run/burn.pids ] && kill $(cat /run/burn.pids) 2>/dev/null
: >/run/burn.pids
i=0
while [ "$i" -lt "$1" ]; do
    sh -c 'trap "" HUP; while :; do :; done' </dev/null >/dev/null 2>&1 &
    echo $! >>/run/burn.pids
    i=$((i + 1))
done
echo "corral-burn: $1"
BURN
chmod 755 /bin/burn

# corral.burn=<N>: N busy loops from boot on.
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        corral.burn=*) burn "${arg#corral.burn=}" ;;
    esac
done

# A shell for the interactive console, in a session of its own with ttyS0 as its terminal
# (so Ctrl-C reaches its commands, never this loop). It starts on the first Enter typed on
# the console, so the serial log holds only heartbeats until someone uses it; leaving it
# (exit, Ctrl-D) waits for the next Enter.
(
    exec </dev/ttyS0 >/dev/ttyS0 2>&1
    while :; do
        read -r _ || sleep 1
        PS1='tiny# ' setsid -c sh
    done
) &

n=1
while :; do
    echo "corral-heartbeat $n"
    if [ "$diskmark" = 1 ]; then
        # The counter as text, NUL-padded to one sector, flushed past the guest cache.
        echo "$n" | dd of=/dev/vda bs=512 count=1 conv=sync,notrunc,fsync 2>/dev/null
    fi
    n=$((n + 1))
    sleep 1
done
