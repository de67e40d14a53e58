#!/usr/bin/env bash
# Run a command inside the build root: /proc, /dev and /sys bind-mounted for the command's lifetime (a
# private mount namespace, so nothing stays mounted after it and no cleanup can be forgotten).
#
#   installer/buildroot/enter.sh ROOT COMMAND [ARGS...]
#
# Environment passed in: the variables named in ENTER_KEEP (space-separated) besides HOME=/root, PATH, LANG.
set -euo pipefail
ROOT="${1:?usage: enter.sh ROOT COMMAND...}"
shift
[ -d "$ROOT/etc" ] || { echo "enter.sh: $ROOT is not a root filesystem" >&2; exit 2; }
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
ENVS=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
for name in ${ENTER_KEEP:-}; do
    ENVS+=("$name=${!name:-}")
done
exec unshare --mount --propagation private -- sh -c '
    root="$1"; shift
    mount --rbind /proc "$root/proc" && mount --rbind /dev "$root/dev" && mount --rbind /sys "$root/sys"
    exec chroot "$root" env -i "$@"
' enter "$ROOT" "${ENVS[@]}" "$@"
