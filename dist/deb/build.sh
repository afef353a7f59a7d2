#!/usr/bin/env bash
# Builds the Debian package of latchkey with cargo-deb: latchkey, latchkeyd and the credential
# helpers in /usr/bin, the systemd user units, the D-Bus activation file, shell completions and
# man pages. The metadata is [package.metadata.deb] in crates/latchkey-cli/Cargo.toml.
# Usage: dist/deb/build.sh [--profile release|dev] [--no-build]
#   --profile dev   package the debug binaries (what the test suite does: they are built already)
#   --no-build      do not run cargo build first
# Prints the path of the .deb on its last line. cargo-deb is installed into target/tools if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=release build=true
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=$2; shift 2 ;;
        --no-build) build=false; shift ;;
        *) echo "usage: $0 [--profile release|dev] [--no-build]" >&2; exit 2 ;;
    esac
done
case "$profile" in
    dev) bindir=target/debug ;;
    *) bindir=target/$profile ;;
esac

CARGO_DEB_VERSION=3.8.0
cargo_deb=target/tools/bin/cargo-deb
if ! [ -x "$cargo_deb" ] || ! "$cargo_deb" --version | grep -qF " $CARGO_DEB_VERSION"; then
    echo "==> installing cargo-deb $CARGO_DEB_VERSION into target/tools"
    cargo install --quiet --locked --no-default-features --version "$CARGO_DEB_VERSION" \
        --root target/tools --target-dir target/tools/build cargo-deb
fi

if $build; then
    cargo build --locked --profile "$profile" --bins
fi

# What is generated for the package (gitignored): units and the D-Bus file with the installed
# daemon's path, completions and man pages from the built CLI's own clap definitions.
assets=dist/deb/assets
rm -rf "$assets"
mkdir -p "$assets"/{systemd,dbus,completions,man}
for unit in latchkeyd.service latchkeyd.socket; do
    { echo "# Installed by the latchkey package; enable with: systemctl --user enable --now latchkeyd.socket"
      grep -v '^#' "systemd/$unit" | sed 's|@LATCHKEYD@|/usr/bin/latchkeyd|g'; } >"$assets/systemd/$unit"
done
{ echo "# Installed by the latchkey package: the session bus starts latchkeyd on first use."
  grep -v '^#' dist/dev.latchkey.Latchkey1.service | sed 's|@LATCHKEYD@|/usr/bin/latchkeyd|g'; } \
    >"$assets/dbus/dev.latchkey.Latchkey1.service"
"$bindir/latchkey" completions bash >"$assets/completions/latchkey"
"$bindir/latchkey" completions zsh >"$assets/completions/_latchkey"
"$bindir/latchkey" completions fish >"$assets/completions/latchkey.fish"
"$bindir/latchkey" man "$assets/man"
gzip -9n "$assets"/man/*.1

args=(--no-build --locked -p latchkey-cli --output target/debian)
[ "$profile" = release ] || args+=(--profile "$profile")
"$cargo_deb" "${args[@]}" | tail -1
