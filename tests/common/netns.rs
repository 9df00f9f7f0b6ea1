//! A network namespace of the calling test thread's own, for traffic that
//! needs addresses the host's loopback does not have (a second IPv6 address:
//! `lo` carries only `::1`). Needs root (`unshare(CLONE_NEWNET)`, `ip addr
//! add`); CI runs as root. Without it the test fails saying so — it never
//! skips silently.
//!
//! `unshare` moves only the calling thread: the threads it spawns, the
//! sockets it opens and the processes it starts (the server, `dial`) are in
//! the namespace; the other tests' threads are not. The namespace has no
//! name and goes away with its last thread and process: nothing to clean up.

use std::process::Command;

/// Move this thread into a fresh network namespace, bring its `lo` up (it
/// has 127.0.0.1/8 and ::1) and add each address of `extra` to it (`/128` or
/// `/32`, no duplicate address detection).
pub fn enter_private_network(extra: &[&str]) {
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {} (this test needs a network namespace of its own: \
         run it as root, as CI does)",
        std::io::Error::last_os_error()
    );
    ip(&["link", "set", "lo", "up"]);
    for addr in extra {
        let ip_addr: std::net::IpAddr = addr.parse().expect("an IP address");
        let (family, prefix) = if ip_addr.is_ipv6() {
            ("-6", 128)
        } else {
            ("-4", 32)
        };
        ip(&[
            family,
            "addr",
            "add",
            &format!("{addr}/{prefix}"),
            "dev",
            "lo",
            "nodad",
        ]);
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip (apt-get install -y iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
