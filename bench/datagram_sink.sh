#!/usr/bin/env bash
# The kernel's cost per datagram with the sends leaving through a device that
# drops them (as a NIC takes them off the core) instead of being delivered into
# a caller's loopback socket (BENCHMARKS.md §21). Needs root: it makes a network
# namespace of its own, `sspr-bench-sink`, with a `tun` device nobody reads (the kernel drops what is sent to it), runs
# `cargo bench --bench datagram_io -- --shared-port-only` in it twice (sends to
# the tun device, then to loopback callers as in the plain bench), and
# removes the namespace. No traffic leaves the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
ns=sspr-bench-sink
cargo bench --no-run --bench datagram_io >/dev/null 2>&1
ip netns del "$ns" 2>/dev/null || true
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev sink0 mode tun
ip -n "$ns" addr add 10.254.0.1/24 dev sink0
ip -n "$ns" link set sink0 up
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns exec "$ns" env DATAGRAM_IO_SINK=10.254.0.2 cargo bench --bench datagram_io -- --shared-port-only 2>&1 | grep -v '^ *\(Running\|Finished\|Compiling\)'
ip netns exec "$ns" cargo bench --bench datagram_io -- --shared-port-only 2>&1 | grep -v '^ *\(Running\|Finished\|Compiling\)'
