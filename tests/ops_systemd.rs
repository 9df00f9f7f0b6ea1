//! sd_notify wrappers against a real unix datagram socket set as NOTIFY_SOCKET.
//!
//! The environment is process-global, so this binary holds exactly one test, which walks
//! through every case in order.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sspr_ivr::ops::systemd;

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("notification datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_reach_the_socket_and_are_noops_outside_systemd() {
    // Outside systemd: no socket, everything is a successful no-op.
    std::env::remove_var("NOTIFY_SOCKET");
    std::env::remove_var("WATCHDOG_USEC");
    std::env::remove_var("WATCHDOG_PID");
    assert!(!systemd::under_systemd());
    systemd::notify_ready().expect("no-op");
    systemd::notify_reloading().expect("no-op");
    systemd::notify_stopping().expect("no-op");
    systemd::notify_status("idle").expect("no-op");
    systemd::notify_watchdog().expect("no-op");
    assert_eq!(systemd::watchdog_interval(), None);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    std::env::set_var("NOTIFY_SOCKET", &path);
    assert!(systemd::under_systemd());

    systemd::notify_ready().expect("ready");
    assert_eq!(recv(&sock), "READY=1\n");
    systemd::notify_watchdog().expect("watchdog");
    assert_eq!(recv(&sock), "WATCHDOG=1\n");
    systemd::notify_status("12 calls\nactive").expect("status");
    assert_eq!(recv(&sock), "STATUS=12 calls active\n");
    systemd::notify_reloading().expect("reloading");
    let msg = recv(&sock);
    let mut lines = msg.lines();
    assert_eq!(lines.next(), Some("RELOADING=1"));
    let usec = lines
        .next()
        .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(usec.is_some_and(|u| u > 0), "{msg}");
    systemd::notify_stopping().expect("stopping");
    assert_eq!(recv(&sock), "STOPPING=1\n");

    // The variable is left in place for later notifications.
    assert!(std::env::var_os("NOTIFY_SOCKET").is_some());

    // A socket path nobody listens on is an error, not a panic.
    drop(sock);
    assert!(systemd::notify_ready().is_err());

    // Watchdog interval, like sd_watchdog_enabled(3).
    let me = std::process::id().to_string();
    for (usec, pid, want) in [
        (
            Some("30000000"),
            Some(me.as_str()),
            Some(Duration::from_secs(30)),
        ),
        (Some("30000000"), None, Some(Duration::from_secs(30))),
        (Some("30000000"), Some("1"), None),
        (Some("0"), Some(me.as_str()), None),
        (Some("abc"), Some(me.as_str()), None),
        (None, Some(me.as_str()), None),
    ] {
        match usec {
            Some(v) => std::env::set_var("WATCHDOG_USEC", v),
            None => std::env::remove_var("WATCHDOG_USEC"),
        }
        match pid {
            Some(v) => std::env::set_var("WATCHDOG_PID", v),
            None => std::env::remove_var("WATCHDOG_PID"),
        }
        assert_eq!(systemd::watchdog_interval(), want, "{usec:?} {pid:?}");
    }
    std::env::remove_var("NOTIFY_SOCKET");
}
