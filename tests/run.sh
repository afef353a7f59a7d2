#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, check formatting and lints,
# build the binaries, run every test against a real bus, a real gnome-keyring and real sockets;
# then the Windows build, tested under Wine, and the macOS type-check.
# Usage: ./tests/run.sh            everything, as CI runs it (from anywhere in the repository)
#        ./tests/run.sh lint       only fmt, clippy and rustdoc's link check
#        ./tests/run.sh unit       only the crates' own tests (no binaries, no e2e)
#        ./tests/run.sh e2e [F]    only the end-to-end tests, optionally those matching F
#                                  (e.g. `./tests/run.sh e2e trust::`)
#        ./tests/run.sh python [F] only the Python client's tests (pytest in target/python-venv,
#                                  against the built latchkeyd; F is pytest's -k expression)
#        ./tests/run.sh deb        build the .deb (dist/deb/build.sh, debug binaries), install it
#                                  with dpkg -i, check what it installed, remove it
#        ./tests/run.sh windows    build for x86_64-pc-windows-gnu, run the unit tests under Wine
#        ./tests/run.sh macos      type-check for aarch64- and x86_64-apple-darwin
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
filter=${2:-}
case "$part" in
    all|lint|unit|e2e|python|deb|windows|macos) ;;
    *) echo "usage: $0 [all|lint|unit|e2e [FILTER]|python [FILTER]|deb|windows|macos]" >&2; exit 2 ;;
esac

# The crates built for Windows. Add a crate here once it builds for that platform; the goal is
# the whole workspace. macOS type-checks the whole workspace (every crate and target).
WINDOWS_CRATES=(latchkey-proto latchkey-core latchkey-paths latchkey-grants latchkey-audit latchkey-oauth latchkey-store latchkey-proxy latchkey-daemon
    latchkey-client latchkey-cli latchkey-credential-helpers)
MACOS_TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)
WINDOWS_TARGET=x86_64-pc-windows-gnu

linux=false windows=false macos=false
case "$part" in
    all) linux=true windows=true macos=true ;;
    windows) windows=true ;;
    macos) macos=true ;;
    *) linux=true ;;
esac

# Debian's rust toolchain (rustc-web, with the standard library's sources) builds std for the
# other targets (see /work/shared/platforms.md); rustup's cannot add targets here.
need=()
if $linux; then
    command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
    command -v gnome-keyring-daemon >/dev/null || need+=(gnome-keyring)
    command -v secret-tool >/dev/null || need+=(libsecret-tools)
    command -v gdbus >/dev/null || need+=(libglib2.0-bin)
    command -v systemd-socket-activate >/dev/null || need+=(systemd)
    # The file store's entries are opened with the stock age tool in a test.
    command -v age >/dev/null || need+=(age)
    # The credential helpers are tested through the real git client (and git http-backend).
    command -v git >/dev/null || need+=(git)
    # ... and docker-credential-latchkey through the docker CLI (no docker daemon is used).
    command -v docker >/dev/null || need+=(docker.io)
    # The D-Bus Python example runs on Debian's python3, where python3-dbus installs.
    /usr/bin/python3 -c "import dbus" 2>/dev/null || need+=(python3-dbus)
    # The proxy's tests (e2e and Python) make their test CA with the openssl command.
    command -v openssl >/dev/null || need+=(openssl)
fi
if [ "$part" = all ] || [ "$part" = python ]; then
    # The Python client's tests run in a venv; Debian ships venv's pip in python3-venv.
    command -v python3 >/dev/null || need+=(python3)
    python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
fi
if [ "$part" = all ] || [ "$part" = deb ]; then
    command -v systemd-analyze >/dev/null || need+=(systemd)
    command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
fi
if $windows || $macos; then
    for pkg in rustc-web cargo-web rust-web-src; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
    done
fi
if $windows; then
    command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
    [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
    command -v wineserver >/dev/null || need+=(wine)
fi
if $macos; then
    command -v clang >/dev/null || need+=(clang)
fi
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

# Runs "$@" and says how long it took. A failure ends the script there (set -e), with its
# status: never call this in an `||` or `if` context, where bash would ignore set -e inside.
timed() {
    local name=$1 start=$SECONDS
    shift
    "$@"
    local took=$((SECONDS - start))
    echo "==> $name took $((took / 60))m $((took % 60))s"
}

# Sums the `test result:` lines of a cargo test log.
summary() {
    awk -v label="$1" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "latchkey%s: %d passed, %d failed\n", label, p, f }' "$2"
}

# Each crate of a list as `-p CRATE`.
packages() {
    local crate
    for crate in "$@"; do printf -- '-p\n%s\n' "$crate"; done
}

# Cargo of Debian's toolchain, building the standard library for "$1" (the target) from source.
# A target dir of its own keeps it from fighting over artifacts with rustup's toolchain.
cross_cargo() {
    local command=$1 target=$2 dir=$3
    shift 3
    env PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        /usr/bin/cargo "$command" -Zbuild-std=std,panic_abort --target "$target" \
        --target-dir "$dir" --locked "$@"
}

linux_lint() {
    echo "==> cargo fmt --check"
    cargo fmt --all -- --check
    echo "==> cargo clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
    # Broken or ambiguous doc links, stray HTML in doc comments. Private items are documented
    # too, so a link to one resolves; `--no-deps` keeps it to the workspace's own crates.
    echo "==> cargo doc (-D warnings)"
    RUSTDOCFLAGS="-D warnings -A rustdoc::private_intra_doc_links" \
        cargo doc --workspace --no-deps --document-private-items --locked --quiet
}

linux_tests() {
    local tests
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
    local log status
    log=$(mktemp)
    set +e
    if [ -n "$filter" ]; then
        cargo test "${tests[@]}" --locked -- "$filter" 2>&1 | tee "$log"
    else
        cargo test "${tests[@]}" --locked 2>&1 | tee "$log"
    fi
    status=${PIPESTATUS[0]}
    set -e
    summary "" "$log"
    rm -f "$log"
    return "$status"
}

# --- Python: the client in dist/python, tested against the built daemon ------------------------

PYTHON_VENV=$PWD/target/python-venv
PYTEST_VERSION=8.4.2
# The OpenAI SDK, as an agent behind `latchkey proxy` (dist/python/tests/test_openai_proxy.py).
OPENAI_VERSION=3.57.0

python_tests() {
    echo "==> cargo build (latchkeyd and latchkey, used by the Python client's tests)"
    cargo build -p latchkey-daemon -p latchkey-cli --bins --locked
    if [ ! -x "$PYTHON_VENV/bin/python" ]; then
        echo "==> python3 -m venv $PYTHON_VENV"
        python3 -m venv "$PYTHON_VENV"
    fi
    local pip=("$PYTHON_VENV/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" "pytest==$PYTEST_VERSION" "openai==$OPENAI_VERSION" "setuptools>=61" wheel
    # Installed (not put on a path) so that the packaging is tested too; again each run, as
    # the version does not change with the sources.
    "${pip[@]}" --no-deps --force-reinstall --no-build-isolation ./dist/python
    echo "==> pytest dist/python"
    local args=(-p no:cacheprovider dist/python)
    [ -n "$filter" ] && args+=(-k "$filter")
    LATCHKEY_BIN_DIR=$PWD/target/debug "$PYTHON_VENV/bin/python" -m pytest "${args[@]}"
}

# --- The Debian package: built, installed, checked, removed --------------------------------------

deb_tests() {
    echo "==> cargo build (the binaries the package carries)"
    cargo build --workspace --bins --locked
    echo "==> dist/deb/build.sh --profile dev --no-build"
    local deb sudo=""
    deb=$(dist/deb/build.sh --profile dev --no-build | tail -1)
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "==> dpkg -i $deb"
    $sudo dpkg -i "$deb"
    local file
    for file in /usr/bin/latchkeyd /usr/bin/latchkey /usr/bin/git-credential-latchkey \
        /usr/bin/docker-credential-latchkey /usr/lib/systemd/user/latchkeyd.service \
        /usr/lib/systemd/user/latchkeyd.socket /usr/share/dbus-1/services/dev.latchkey.Latchkey1.service \
        /usr/share/bash-completion/completions/latchkey /usr/share/zsh/vendor-completions/_latchkey \
        /usr/share/fish/vendor_completions.d/latchkey.fish /usr/share/man/man1/latchkey.1.gz; do
        [ -e "$file" ] || { echo "the package did not install $file" >&2; return 1; }
    done
    grep -q '^ExecStart=/usr/bin/latchkeyd$' /usr/lib/systemd/user/latchkeyd.service
    grep -q '^Exec=/usr/bin/latchkeyd$' /usr/share/dbus-1/services/dev.latchkey.Latchkey1.service
    zcat /usr/share/man/man1/latchkey.1.gz | grep -q '^\.TH'
    bash -c 'source /usr/share/bash-completion/completions/latchkey && complete -p latchkey' >/dev/null
    echo "==> systemd-analyze --user verify (the installed units)"
    local home
    home=$(mktemp -d)
    mkdir -m 0700 "$home/run"
    HOME=$home XDG_RUNTIME_DIR=$home/run systemd-analyze --user verify \
        /usr/lib/systemd/user/latchkeyd.socket /usr/lib/systemd/user/latchkeyd.service
    echo "==> the installed latchkeyd serves the installed latchkey"
    local pid code=0
    env -u DBUS_SESSION_BUS_ADDRESS HOME="$home" XDG_RUNTIME_DIR="$home/run" \
        /usr/bin/latchkeyd --no-dbus --store memory 2>"$home/daemon.log" &
    pid=$!
    local deadline=$((SECONDS + 30))
    until [ -S "$home/run/latchkey/latchkey.sock" ]; do
        if [ $SECONDS -ge $deadline ] || ! kill -0 "$pid" 2>/dev/null; then
            cat "$home/daemon.log" >&2
            code=1
            break
        fi
        sleep 0.05
    done
    if [ $code -eq 0 ]; then
        env -u DBUS_SESSION_BUS_ADDRESS HOME="$home" XDG_RUNTIME_DIR="$home/run" \
            /usr/bin/latchkey version || code=$?
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$home"
    [ $code -eq 0 ] || { echo "latchkey version against the installed daemon failed ($code)" >&2; return 1; }
    echo "==> dpkg -r latchkey"
    $sudo dpkg -r latchkey >/dev/null
    if [ -e /usr/bin/latchkeyd ]; then
        echo "dpkg -r left /usr/bin/latchkeyd behind" >&2
        return 1
    fi
}

# --- Windows: mingw builds, Wine runs ---------------------------------------------------------

WIN_DIR=$PWD/target/windows
WIN_LOGS=$WIN_DIR/logs
WINE=/usr/lib/wine/wine64

# rustc 1.85's windows-gnu link wants rsbegin.o and rsend.o, which -Zbuild-std does not
# build: compile them from the standard library's sources, once per target dir.
windows_crt() {
    local f
    mkdir -p "$WIN_DIR/crt"
    for f in rsbegin rsend; do
        [ -s "$WIN_DIR/crt/$f.o" ] && continue
        RUSTC_BOOTSTRAP=1 /usr/bin/rustc --target "$WINDOWS_TARGET" --emit=obj -C panic=abort -O \
            -o "$WIN_DIR/crt/$f.o" "/usr/lib/rustlib/src/rust/library/rtstartup/$f.rs"
    done
}

# Test setup only, never shipped: Wine 8.0 lacks the ProcessPrng that Rust's std imports
# (see tests/wine/prng.c); this builds the stand-in DLL from the sources in tests/wine/.
windows_shim() {
    local dll=$WIN_DIR/shim/bcryptprimitives.dll
    if [ -s "$dll" ] && [ "$dll" -nt tests/wine/prng.c ] && [ "$dll" -nt tests/wine/prng.def ]; then
        return
    fi
    mkdir -p "$WIN_DIR/shim"
    x86_64-w64-mingw32-gcc -shared -O2 -Wall -o "$dll" tests/wine/prng.c tests/wine/prng.def -ladvapi32
}

windows_cargo() {
    local command=$1
    shift
    (
        export RUSTFLAGS="-L $WIN_DIR/crt -D warnings"
        export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
        cross_cargo "$command" "$WINDOWS_TARGET" "$WIN_DIR" "$@"
    )
}

# One Wine prefix per run, removed (its wineserver stopped first) when the script exits.
# Wine's output always goes to files: wineserver inherits it and never closes it.
windows_prefix() {
    WINEPREFIX=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-wine.XXXXXX")
    export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
    trap 'WINEPREFIX=$WINEPREFIX wineserver -k >/dev/null 2>&1 || true; rm -rf "$WINEPREFIX"' EXIT
    echo "==> Wine prefix $WINEPREFIX"
    "$WINE" wineboot -i >"$WIN_LOGS/wineboot.txt" 2>&1
    cp "$WIN_DIR/shim/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
}

windows_unit() {
    echo "==> cargo test under Wine (${WINDOWS_CRATES[*]})"
    local log=$WIN_LOGS/unit.txt status=0
    # shellcheck disable=SC2046
    (
        export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$WINE
        windows_cargo test $(packages "${WINDOWS_CRATES[@]}")
    ) >"$log" 2>&1 || status=$?
    grep -v '^\s*Compiling ' "$log" || true
    summary " (Windows, Wine)" "$log"
    return "$status"
}

# The end-to-end suite of the Windows binaries (named pipe, Credential Manager) hooks in here:
# an executable tests/windows/e2e.sh runs in the prepared Wine prefix (see tests/windows/README.md).
windows_e2e() {
    if [ ! -x tests/windows/e2e.sh ]; then
        echo "==> no Windows end-to-end suite yet (tests/windows/e2e.sh)"
        return 0
    fi
    echo "==> Windows end-to-end tests"
    export WIN_DIR WIN_LOGS WINE WINDOWS_TARGET
    export -f cross_cargo windows_cargo
    tests/windows/e2e.sh
}

windows_build() {
    echo "==> cargo build for $WINDOWS_TARGET (${WINDOWS_CRATES[*]})"
    local log=$WIN_LOGS/build.txt
    # shellcheck disable=SC2046
    windows_cargo test --no-run $(packages "${WINDOWS_CRATES[@]}") >"$log" 2>&1 || {
        cat "$log"
        return 1
    }
}

windows_part() {
    mkdir -p "$WIN_LOGS"
    windows_crt
    windows_shim
    timed "Windows build" windows_build
    timed "Wine prefix" windows_prefix
    timed "Windows unit tests" windows_unit
    timed "Windows end-to-end tests" windows_e2e
}

# --- macOS: type-check only ------------------------------------------------------------------

# The whole workspace: every crate, binary, test and bench. CC is clang for any build script
# that compiles C (none in the graph does today: that needs the macOS SDK, which Debian does
# not have). The Linux-only parts (D-Bus, gnome-keyring, useradd) are compiled out by cfg.
macos_check() {
    (
        export "CC_${1//-/_}=clang" RUSTFLAGS="-D warnings"
        cross_cargo check "$1" target/macos --workspace --all-targets
    )
}

macos_part() {
    local target
    for target in "${MACOS_TARGETS[@]}"; do
        echo "==> cargo check for $target (the whole workspace, all targets)"
        timed "macOS check ($target)" macos_check "$target"
    done
}

if $linux; then
    if [ "$part" = all ] || [ "$part" = lint ]; then
        timed "lint" linux_lint
    fi
    case "$part" in
        all|unit|e2e) timed "Linux tests" linux_tests ;;
    esac
    if [ "$part" = all ] || [ "$part" = python ]; then
        timed "Python client tests" python_tests
    fi
    if [ "$part" = all ] || [ "$part" = deb ]; then
        timed "Debian package" deb_tests
    fi
fi
if $windows; then
    timed "Windows (build, Wine)" windows_part
fi
if $macos; then
    timed "macOS (type-check)" macos_part
fi
