//! What a started server listens on: the start-up banner on standard output and the
//! `listening` log line are both written from this one description, so they cannot disagree.
//!
//! Every field is printed with its `Display` form (`admin off`, never `admin None`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use crate::sip::Transport;

/// The server's addresses once every socket is bound (ports chosen by the OS resolved).
#[derive(Clone, Debug)]
pub struct Bound {
    /// The SIP socket address (UDP, and TCP when configured).
    pub sip: SocketAddr,
    /// Transports SIP is served on.
    pub transports: Vec<Transport>,
    /// The SIP-over-TLS listener, when `sip.tls` is set.
    pub sip_tls: Option<SocketAddr>,
    /// The address written into Via/Contact when it differs from `sip` (`sip.advertised_addr`).
    pub advertised: Option<SocketAddr>,
    /// Local address of the RTP sockets.
    pub rtp_ip: IpAddr,
    /// The RTP port range calls take ports from.
    pub rtp_ports: RangeInclusive<u16>,
    /// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`), if enabled.
    pub admin: Option<SocketAddr>,
    /// The configuration file the server runs from (`None`: the embedded demo configuration).
    pub config: Option<PathBuf>,
    /// Forgets the cross-call attempt limits and code-send budgets (`demo`'s state reset).
    pub reset_attempt_limits: AttemptLimitsReset,
}

/// A handle that clears the server's per-caller and per-account limits (`POST /demo/reset`).
#[derive(Clone, Default)]
pub struct AttemptLimitsReset(Option<Arc<dyn Fn() + Send + Sync>>);

impl AttemptLimitsReset {
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        AttemptLimitsReset(Some(Arc::new(f)))
    }

    pub fn run(&self) {
        if let Some(f) = &self.0 {
            f();
        }
    }
}

impl std::fmt::Debug for AttemptLimitsReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttemptLimitsReset")
    }
}

impl Bound {
    /// The program's version (`Cargo.toml`).
    pub fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// `udp+tcp` or `udp`.
    pub fn transports_text(&self) -> String {
        let names: Vec<&str> = self
            .transports
            .iter()
            .map(|t| match t {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
                Transport::Tls => "tls",
            })
            .collect();
        names.join("+")
    }

    /// `127.0.0.1:5061` or `off`.
    pub fn tls_text(&self) -> String {
        match self.sip_tls {
            Some(a) => a.to_string(),
            None => "off".into(),
        }
    }

    /// A warning when callers reach SIP at an address of one IP family and the media
    /// is on the other (`sip.listen` or `sip.advertised_addr` on `[::1]`, `media.rtp_ip`
    /// on `127.0.0.1`): their offers mostly carry media of the family they signal on,
    /// and admission refuses those with `488` (`Warning: 301`). `None` when the families
    /// agree or SIP listens on a wildcard (dual stack: either family may call).
    pub fn media_family_warning(&self) -> Option<String> {
        let sip = self.advertised.unwrap_or(self.sip).ip();
        if sip.is_unspecified() || sip.is_ipv4() == self.rtp_ip.is_ipv4() {
            return None;
        }
        let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        Some(format!(
            "SIP is reached at {sip} ({}) but media.rtp_ip is {} ({}): a caller whose offer \
             has {} media gets 488 (Warning: 301); set media.rtp_ip to an address of the \
             same family as SIP to take such calls",
            family(sip),
            self.rtp_ip,
            family(self.rtp_ip),
            family(sip)
        ))
    }

    /// `127.0.0.1:20000-29999`
    pub fn rtp_text(&self) -> String {
        let ip = match self.rtp_ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        format!("{ip}:{}-{}", self.rtp_ports.start(), self.rtp_ports.end())
    }

    /// `http://127.0.0.1:9090` or `off`.
    pub fn admin_text(&self) -> String {
        match self.admin {
            Some(a) => format!("http://{a}"),
            None => "off".into(),
        }
    }

    /// The configuration file's path, or `embedded (demo)`.
    pub fn config_text(&self) -> String {
        match &self.config {
            Some(p) => p.display().to_string(),
            None => "embedded (demo)".into(),
        }
    }

    /// The start-up banner: a first line that says the server is up (`sspr-ivr 0.1.0
    /// listening on sip:…`), then one aligned line per address. Ends with a newline.
    pub fn banner(&self) -> String {
        let mut s = format!(
            "sspr-ivr {} listening on sip:{} ({})\n",
            self.version(),
            self.sip,
            self.transports_text()
        );
        if let Some(t) = self.sip_tls {
            let _ = writeln!(s, "  tls         sips:{t} (tls)");
        }
        if let Some(a) = self.advertised {
            let _ = writeln!(s, "  advertised  sip:{a}");
        }
        let _ = writeln!(s, "  rtp         {}", self.rtp_text());
        let _ = writeln!(
            s,
            "  admin       {}{}",
            self.admin_text(),
            if self.admin.is_some() {
                "  (/metrics /healthz /readyz)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "  config      {}", self.config_text());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> Bound {
        Bound {
            sip: "127.0.0.1:5060".parse().unwrap(),
            transports: vec![Transport::Udp, Transport::Tcp],
            sip_tls: None,
            advertised: None,
            rtp_ip: "127.0.0.1".parse().unwrap(),
            rtp_ports: 20000..=29999,
            admin: Some("127.0.0.1:9090".parse().unwrap()),
            config: Some("/etc/sspr-ivr/config.yaml".into()),
            reset_attempt_limits: AttemptLimitsReset::default(),
        }
    }

    #[test]
    fn media_of_the_other_family_than_sip_is_warned_about() {
        let mut b = bound();
        assert_eq!(b.media_family_warning(), None);
        b.sip = "[::1]:5060".parse().unwrap();
        let w = b.media_family_warning().unwrap();
        assert!(
            w.contains("::1 (IPv6)") && w.contains("127.0.0.1 (IPv4)"),
            "{w}"
        );
        b.rtp_ip = "::1".parse().unwrap();
        assert_eq!(b.media_family_warning(), None);
        // A wildcard listens on both families.
        b.sip = "[::]:5060".parse().unwrap();
        b.rtp_ip = "127.0.0.1".parse().unwrap();
        assert_eq!(b.media_family_warning(), None);
        // What the trunk is told counts, not the bind address.
        b.advertised = Some("[2001:db8::5]:5060".parse().unwrap());
        assert!(b.media_family_warning().is_some());
    }

    #[test]
    fn banner_names_every_address_without_debug_formatting() {
        let text = bound().banner();
        let want = format!(
            "sspr-ivr {} listening on sip:127.0.0.1:5060 (udp+tcp)\n  rtp         127.0.0.1:20000-29999\n  admin       http://127.0.0.1:9090  (/metrics /healthz /readyz)\n  config      /etc/sspr-ivr/config.yaml\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text, want);
    }

    #[test]
    fn admin_off_embedded_config_advertised_and_ipv6() {
        let mut b = bound();
        b.admin = None;
        b.config = None;
        b.transports = vec![Transport::Udp];
        b.advertised = Some("203.0.113.5:5060".parse().unwrap());
        b.rtp_ip = "::1".parse().unwrap();
        let text = b.banner();
        assert!(text.contains("(udp)\n"), "{text}");
        assert!(text.contains("  admin       off\n"), "{text}");
        assert!(text.contains("  config      embedded (demo)\n"), "{text}");
        assert!(
            text.contains("  advertised  sip:203.0.113.5:5060\n"),
            "{text}"
        );
        assert!(text.contains("  rtp         [::1]:20000-29999\n"), "{text}");
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }
}
