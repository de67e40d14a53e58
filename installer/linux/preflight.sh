# The preflight: can this machine run the program at all? Sourced by install.sh before it copies anything, and
# embedded in the .deb's preinst (installer/deb.py), so both refuse the same machines with the same words.
#
# Needs: die CODE MESSAGE; VERSION; REQUIRES_TEXT (the release's REQUIRES file: glibc=X.Y, cpu_flags=...).
# ASCLEPIUS_INSTALL_CPUINFO: another cpuinfo file, for the installer's own tests.

requirement() { printf '%s\n' "$REQUIRES_TEXT" | sed -n "s/^$1=//p"; }
glibc_version() {
    local v
    v="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')" || v=""
    [ -n "$v" ] || v="$(ldd --version 2>/dev/null | head -n1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?$')" || v=""
    echo "$v"
}
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }  # $1 >= $2

preflight() {
    local need have cpuinfo flags missing flag
    need="$(requirement glibc)"
    if [ -n "$need" ]; then
        have="$(glibc_version)"
        [ -n "$have" ] || die 5 "cannot tell this system's glibc version (getconf GNU_LIBC_VERSION and ldd --version failed); Asclepius Desk $VERSION needs glibc $need or newer. Nothing was installed."
        at_least "$have" "$need" || die 5 "this system has glibc $have; Asclepius Desk $VERSION needs glibc $need or newer (see docs/it-install.md for the distributions that have it). Nothing was installed."
    fi
    cpuinfo="${ASCLEPIUS_INSTALL_CPUINFO:-/proc/cpuinfo}"
    flags=" $(sed -n 's/^flags[[:space:]]*:[[:space:]]*//p' "$cpuinfo" 2>/dev/null | head -n1) "
    missing=""
    for flag in $(requirement cpu_flags); do
        case "$flags" in *" $flag "*) ;; *) missing="$missing $flag" ;; esac
    done
    [ -z "$missing" ] || die 5 "this CPU lacks the instruction set(s)${missing} (from $cpuinfo); Asclepius Desk $VERSION needs: $(requirement cpu_flags) (x86-64 with SSE4.2: Intel Nehalem (2008) or AMD Bulldozer (2011) and newer). Nothing was installed."
}
