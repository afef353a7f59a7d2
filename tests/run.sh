#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, check formatting and lints,
# build the binaries, run every test against a real bus, a real gnome-keyring and real sockets.
# Usage: ./tests/run.sh            everything, as CI runs it (from anywhere in the repository)
#        ./tests/run.sh lint       only fmt and clippy
#        ./tests/run.sh unit       only the crates' own tests (no binaries, no e2e)
#        ./tests/run.sh e2e [F]    only the end-to-end tests, optionally those matching F
#                                  (e.g. `./tests/run.sh e2e trust::`)
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
filter=${2:-}
case "$part" in
    all|lint|unit|e2e) ;;
    *) echo "usage: $0 [all|lint|unit|e2e [FILTER]]" >&2; exit 2 ;;
esac

need=()
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
command -v secret-tool >/dev/null || need+=(libsecret-tools)
command -v gdbus >/dev/null || need+=(libglib2.0-bin)
command -v systemd-socket-activate >/dev/null || need+=(systemd)
# The D-Bus Python example runs on Debian's python3, where python3-dbus installs.
/usr/bin/python3 -c "import dbus" 2>/dev/null || need+=(python3-dbus)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if ! command -v apt-get >/dev/null; then
        echo "missing ${need[*]} and no apt-get to install them" >&2
        exit 1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ "$part" = all ] || [ "$part" = lint ]; then
    echo "==> cargo fmt --check"
    cargo fmt --all -- --check
    echo "==> cargo clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
fi
[ "$part" = lint ] && exit 0
case "$part" in
    all) tests=(--workspace) ;;
    unit) tests=(--workspace --exclude latchkey-tests) ;;
    e2e) tests=(-p latchkey-tests --test e2e) ;;
esac
if [ "$part" != unit ]; then
    echo "==> cargo build (binaries used by the end-to-end tests)"
    cargo build --workspace --bins --locked
fi
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
if [ -n "$filter" ]; then
    cargo test "${tests[@]}" --locked -- "$filter" 2>&1 | tee "$log"
else
    cargo test "${tests[@]}" --locked 2>&1 | tee "$log"
fi
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "latchkey: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
