#!/usr/bin/env bash
# The Windows end-to-end suite (tests/windows/tests/e2e.rs), run by `tests/run.sh windows` in its
# prepared Wine prefix (see README.md here): build latchkeyd.exe and latchkey.exe, then run the
# suite under Wine. Every Wine process's output goes to a file.
set -euo pipefail
cd "$(dirname "$0")/../.."

log=$WIN_LOGS/e2e.txt
echo "==> building latchkeyd.exe and latchkey.exe"
windows_cargo build --bins -p latchkey-daemon -p latchkey-cli >"$WIN_LOGS/e2e-build.txt" 2>&1 || {
    cat "$WIN_LOGS/e2e-build.txt"
    exit 1
}
echo "==> running the suite under Wine"
status=0
(
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$WINE
    # The daemons the tests start log at info; the tests read those lines.
    export RUST_LOG=info
    windows_cargo test -p latchkey-windows-tests --test e2e
) >"$log" 2>&1 || status=$?
grep -v '^\s*Compiling ' "$log" || true
exit "$status"
