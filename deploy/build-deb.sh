#!/bin/sh
# Builds the sspr-ivr .deb with dpkg-deb alone (no cargo-deb needed), then checks its contents
# with `dpkg -c`. Produces the same layout as `cargo deb` with Cargo.toml's
# [package.metadata.deb]:
#
#   /usr/bin/sspr-ivr                       the binary
#   /lib/systemd/system/sspr-ivr.service    the unit (deploy/sspr-ivr.service)
#   /etc/sspr-ivr/config.yaml               config.example.yaml, a dpkg conffile, with its
#                                           relative paths made absolute for the packaged
#                                           layout (see packaged_config below)
#   /usr/share/sspr-ivr/flows/              flows/
#   /usr/share/sspr-ivr/prompts/            prompts/ (per-language subdirectories kept)
#   /usr/share/doc/sspr-ivr/operations.md   docs/operations.md
#
# Usage: deploy/build-deb.sh
#        deploy/build-deb.sh --print-config   the packaged /etc/sspr-ivr/config.yaml on stdout
#                                             (deploy/config.yaml is this, for `cargo deb`)
# Env:
#   SSPR_IVR_BIN  binary to package (default target/release/sspr-ivr, built with
#                 `cargo build --release --locked` if missing; an explicit path is never built)
#   SOURCE_DIR    project root holding config.example.yaml, flows/, prompts/ (default: ..)
#   OUT_DIR       where the .deb goes (default: target/debian, like cargo-deb)
#   STRIP         1 (default) strips debug info from the packaged copy; 0 keeps it
#   STAGE_DIR     only stage the package tree into this directory (no dpkg-deb run, no .deb);
#                 the tests use it to run `sspr-ivr check` on the staged configuration
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${SOURCE_DIR:-$(cd "$here/.." && pwd)}
out_dir=${OUT_DIR:-"$root/target/debian"}
strip_bin=${STRIP:-1}

die() {
    echo "build-deb: $*" >&2
    exit 1
}

if [ -z "${STAGE_DIR:-}" ] && [ "${1:-}" != "--print-config" ]; then
    for tool in dpkg-deb dpkg; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
    done
fi

# config.example.yaml resolves relative paths against its own directory, which is
# /etc/sspr-ivr once installed: point flows and prompts at /usr/share/sspr-ivr and the audit
# spool and recordings at the StateDirectory (/var/lib/sspr-ivr; /etc is read-only to the
# service under ProtectSystem=strict). Everything else, comments included, stays as it is.
packaged_config() {
    sed -e 's#^\(  [A-Za-z0-9_-]*: \)flows/#\1/usr/share/sspr-ivr/flows/#' \
        -e 's#^\(  dir: \)prompts$#\1/usr/share/sspr-ivr/prompts#' \
        -e 's#^\(  spool_dir: \)var/#\1/var/lib/sspr-ivr/#' \
        -e 's#^\(  dir: \)var/#\1/var/lib/sspr-ivr/#' \
        "$1"
}

if [ "${1:-}" = "--print-config" ]; then
    packaged_config "$root/config.example.yaml"
    exit 0
fi

version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$here/../Cargo.toml" | head -n 1)
[ -n "$version" ] || die "cannot read the version from Cargo.toml"
arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)

if [ -n "${SSPR_IVR_BIN:-}" ]; then
    bin=$SSPR_IVR_BIN
    [ -x "$bin" ] || die "SSPR_IVR_BIN=$bin is not an executable file"
else
    bin="$here/../target/release/sspr-ivr"
    if [ ! -x "$bin" ]; then
        echo "build-deb: building the release binary"
        (cd "$here/.." && cargo build --release --locked --bin sspr-ivr)
    fi
fi

for f in config.example.yaml flows prompts; do
    [ -e "$root/$f" ] || die "missing $root/$f"
done
ls "$root"/flows/*.yaml >/dev/null 2>&1 || die "no flows/*.yaml in $root"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
if [ -n "${STAGE_DIR:-}" ]; then
    pkg=$STAGE_DIR
else
    pkg="$stage/sspr-ivr"
fi

install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/etc/sspr-ivr" "$pkg/usr/share/sspr-ivr" "$pkg/usr/share/doc/sspr-ivr"
install -m 0755 "$bin" "$pkg/usr/bin/sspr-ivr"
if [ "$strip_bin" = 1 ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$pkg/usr/bin/sspr-ivr"
fi
install -m 0644 "$here/sspr-ivr.service" "$pkg/lib/systemd/system/sspr-ivr.service"
packaged_config "$root/config.example.yaml" >"$pkg/etc/sspr-ivr/config.yaml"
chmod 0644 "$pkg/etc/sspr-ivr/config.yaml"
# No relative data path may survive: it would resolve under /etc/sspr-ivr.
if grep -Eq '^  ([A-Za-z0-9_-]+: flows/|dir: prompts$|spool_dir: [^/]|dir: var/)' \
    "$pkg/etc/sspr-ivr/config.yaml"; then
    die "config.example.yaml has a relative path the packaged config does not rewrite"
fi
cp -R "$root/flows" "$pkg/usr/share/sspr-ivr/flows"
cp -R "$root/prompts" "$pkg/usr/share/sspr-ivr/prompts"
if [ -f "$root/docs/operations.md" ]; then
    install -m 0644 "$root/docs/operations.md" "$pkg/usr/share/doc/sspr-ivr/operations.md"
fi
# Normalise permissions whatever the checkout's umask was.
find "$pkg/usr/share" "$pkg/etc" -type d -exec chmod 0755 {} +
find "$pkg/usr/share" "$pkg/etc" -type f -exec chmod 0644 {} +

if [ -n "${STAGE_DIR:-}" ]; then
    echo "build-deb: staged in $pkg"
    exit 0
fi

# Runtime dependencies from the binary's shared libraries.
depends=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    mkdir -p "$stage/shlibs/debian"
    printf 'Source: sspr-ivr\n\nPackage: sspr-ivr\nArchitecture: any\n' >"$stage/shlibs/debian/control"
    depends=$(cd "$stage/shlibs" && dpkg-shlibdeps -O -e "$pkg/usr/bin/sspr-ivr" 2>/dev/null |
        sed -n 's/^shlibs:Depends=//p') || depends=""
fi
if [ -z "$depends" ]; then
    depends="libc6, libgcc-s1"
fi

installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: sspr-ivr
Version: $version
Architecture: $arch
Maintainer: sspr-ivr maintainers <sspr-ivr@localhost>
Installed-Size: $installed_size
Depends: $depends
Section: net
Priority: optional
Homepage: https://localhost/sspr-ivr
Description: standalone SIP IVR server with a self-service password reset flow
 sspr-ivr answers SIP calls itself, plays prompts over RTP, detects DTMF
 (RFC 4733, in-band, SIP INFO) and walks callers through YAML call flows.
 Its main flow is a self-service PIN reset with one-time codes, a secure
 segment that is never logged or recorded, and an audited result.
 .
 Runs as a hardened systemd service (Type=notify, watchdog) with a
 Prometheus /metrics endpoint on the loopback admin port.
CONTROL
echo "/etc/sspr-ivr/config.yaml" >"$pkg/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$pkg/DEBIAN/$script"
done

mkdir -p "$out_dir"
deb="$out_dir/sspr-ivr_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null

# Check what an operator will get.
listing=$(dpkg -c "$deb")
for path in ./usr/bin/sspr-ivr ./lib/systemd/system/sspr-ivr.service ./etc/sspr-ivr/config.yaml \
    ./usr/share/sspr-ivr/flows/ ./usr/share/sspr-ivr/prompts/; do
    printf '%s\n' "$listing" | awk '{print $6}' | grep -qx "$path" || die "$deb lacks $path"
done
printf '%s\n' "$listing" | awk '{print $6}' | grep -q '^\./usr/share/sspr-ivr/flows/.*\.yaml$' ||
    die "$deb has no flow"
printf '%s\n' "$listing" | awk '{print $6}' | grep -q '^\./usr/share/sspr-ivr/prompts/.*\.wav$' ||
    die "$deb has no prompt"
printf '%s\n' "$listing" | grep -q '^-rwxr-xr-x root/root .* \./usr/bin/sspr-ivr$' ||
    die "binary is not root-owned 0755"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/sspr-ivr/config.yaml || die "config.yaml is not a conffile"

echo "build-deb: $deb"
