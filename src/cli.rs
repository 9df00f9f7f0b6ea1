//! The command line: `serve`, `demo`, `check`, `graph`, `dial`, `load`, `dtmf`, and the generated
//! `completions` and `man` pages. Thin: each command loads what it needs and hands over to the
//! library. `serve` and `check` read [`DEFAULT_CONFIG`] unless `--config` says otherwise.

mod docs;
mod report;

pub use report::report;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Loaded};
use crate::ops::logging::{self, LogFormat};
use crate::runtime::dial::DialArgs;
use crate::runtime::load::LoadArgs;

/// The configuration `serve` and `check` read when `--config` is not given: where the .deb
/// installs it.
pub const DEFAULT_CONFIG: &str = "/etc/sspr-ivr/config.yaml";

/// The demo backend's address in `config.example.yaml`; `demo` swaps in
/// wherever it actually started the backend.
pub const DEMO_BACKEND_BASE: &str = "http://127.0.0.1:8089";

/// The example config, embedded so `demo` works from anywhere.
pub const EXAMPLE_CONFIG: &str = include_str!("../config.example.yaml");

#[derive(Parser, Debug)]
#[command(
    name = "sspr-ivr",
    version,
    about = "A standalone SIP IVR server with a self-service password reset flow"
)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// Log filter (`info`, `debug`, `sspr_ivr=trace`); RUST_LOG overrides.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service.
    Serve {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Override `sip.listen`.
        #[arg(long)]
        sip: Option<SocketAddr>,
        /// Override `admin.listen`.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Run the server on 127.0.0.1 with the password-reset flow and an
    /// in-process demo directory and OTP service.
    Demo {
        /// Where SIP listens (UDP and TCP); RTP uses the same IP (`[::1]:5060` for IPv6).
        #[arg(long, default_value = "127.0.0.1:5060")]
        sip: SocketAddr,
        /// Where the admin HTTP server (/metrics, /healthz, /readyz) listens.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Where the demo backend listens.
        #[arg(long, default_value = "127.0.0.1:8089")]
        backend: SocketAddr,
        /// Delay before the demo "SMS" is delivered (exercises the comfort loop).
        #[arg(long, default_value = "3s")]
        sms_delay: String,
        /// Record calls into this directory (WAV + sidecar + timeline).
        #[arg(long)]
        record: Option<PathBuf>,
        /// Where the audit spool lives.
        #[arg(long)]
        spool: Option<PathBuf>,
        /// First RTP port (the demo uses the 2000 ports from here: 1000 calls).
        #[arg(long)]
        rtp_port_min: Option<u16>,
        /// Treat unknown employee IDs like known ones until the code step.
        #[arg(long)]
        enumeration_safe: bool,
        /// Make the demo backend "send" this code every time (for scripted
        /// callers such as the sipp scenarios); random otherwise.
        #[arg(long, value_name = "DIGITS")]
        fixed_otp: Option<String>,
        /// The demo backend refuses a second code for a user within this window.
        #[arg(long, default_value = "5s")]
        resend_window: String,
        /// The demo directory (YAML like src/demo/users.yaml); embedded otherwise.
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
    },
    /// Run only the demo directory/OTP backend (for `serve` with
    /// config.example.yaml, which expects it on 127.0.0.1:8089).
    DemoBackend {
        /// Where the backend's HTTP server listens.
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// Delay before the demo "SMS" is delivered.
        #[arg(long, default_value = "3s")]
        sms_delay: String,
        /// Make the backend "send" this code every time; random otherwise.
        #[arg(long, value_name = "DIGITS")]
        fixed_otp: Option<String>,
    },
    /// Validate config, flows, prompts and action wiring; exit 0 or 1.
    Check {
        /// The configuration file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Draw a flow (Graphviz DOT or Mermaid).
    Graph {
        /// The flow file (YAML), e.g. flows/sspr.yaml.
        flow: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Call a SIP URI, press keys, and print the prompts heard and the keys sent.
    Dial(DialArgs),
    /// Load caller: keep N calls up (each streaming audio and pressing keys), check
    /// every call's readback, report server CPU, RSS and RTP timing (BENCHMARKS.md).
    Load(LoadArgs),
    /// Detect DTMF digits in a WAV or raw s16le 8 kHz mono file.
    Dtmf {
        /// The audio file.
        file: PathBuf,
    },
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command.
    Man {
        /// Write sspr-ivr.1 and sspr-ivr-COMMAND.1 into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `graph --format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (`| dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (renders in Markdown on GitHub).
    Mermaid,
}

/// Where flows/ and prompts/ live when running from the embedded config.
fn data_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in [
        cwd.clone(),
        PathBuf::from("/usr/share/sspr-ivr"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ] {
        if dir.join("flows/sspr.yaml").exists() && dir.join("prompts").is_dir() {
            return dir;
        }
    }
    cwd
}

fn init_logging(cli: &Cli, cfg_format: Option<LogFormat>, cfg_level: Option<&str>) {
    let json = cli.log_json || cfg_format == Some(LogFormat::Json);
    let level = cli
        .log_level
        .clone()
        .or_else(|| cfg_level.map(str::to_string))
        .unwrap_or_else(|| "info".into());
    // A second init (tests embedding the CLI) keeps the first subscriber.
    let _ = logging::init(
        if json {
            LogFormat::Json
        } else {
            LogFormat::Human
        },
        &level,
    );
}

pub fn main() -> std::process::ExitCode {
    // Before anything is read (secrets come from the environment).
    if let Err(e) = crate::ops::hardening::harden() {
        eprintln!("warning: {e}; a crash could leave a core file with secrets in it");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            std::process::ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match &cli.command {
        Command::Serve { config, sip, admin } => {
            let mut cfg = Config::load(config)?;
            if let Some(s) = sip {
                if s.ip().is_unspecified() && cfg.sip.advertised_addr.is_none() {
                    anyhow::bail!(
                        "--sip {s} listens on every address: set sip.advertised_addr in {} \
                         to the one peers reach (it goes in Via and Contact)",
                        config.display()
                    );
                }
                cfg.sip.listen = *s;
            }
            if let Some(a) = admin {
                cfg.admin.listen = *a;
            }
            init_logging(&cli, Some(cfg.logging.format), Some(&cfg.logging.level));
            let loaded = Loaded::from_config(cfg)?;
            let path = config.canonicalize().unwrap_or(config.clone());
            runtime()?.block_on(crate::runtime::server::serve(
                loaded,
                Some(path),
                CancellationToken::new(),
                |b| print!("{}", b.banner()),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            sip,
            admin,
            backend,
            sms_delay,
            record,
            spool,
            rtp_port_min,
            enumeration_safe,
            fixed_otp,
            resend_window,
            users,
        } => {
            init_logging(&cli, None, None);
            let delay = crate::duration::parse(sms_delay)?;
            let resend_window = crate::duration::parse(resend_window)?;
            let rt = runtime()?;
            rt.block_on(async {
                let demo = crate::demo::DemoBackend::start(crate::demo::DemoOptions {
                    bind: *backend,
                    sms_delay: delay,
                    fixed_code: fixed_otp.clone(),
                    resend_window,
                    users: match users {
                        Some(path) => crate::demo::DemoUsers::load(path)?,
                        None => crate::demo::DemoUsers::embedded(),
                    },
                    ..Default::default()
                })
                .await
                .context("start the demo backend")?;
                let base = format!("http://{}", demo.addr());
                let text = EXAMPLE_CONFIG.replace(DEMO_BACKEND_BASE, &base);
                let root = data_root();
                let mut cfg = Config::from_yaml(&text, &root.join("config.example.yaml"))?;
                cfg.sip.listen = *sip;
                cfg.media.rtp_ip = demo_media_ip(*sip);
                if sip.ip().is_unspecified() {
                    // Via and Contact name the address the demo's media is on.
                    cfg.sip.advertised_addr = Some(SocketAddr::new(cfg.media.rtp_ip, sip.port()));
                }
                cfg.admin.listen = *admin;
                if let Some(dir) = record {
                    cfg.recording.enabled = true;
                    cfg.recording.dir = dir.clone();
                }
                cfg.audit.spool_dir = spool
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join("sspr-ivr-demo-audit"));
                if let Some(p) = rtp_port_min {
                    cfg.media.rtp_port_min = *p;
                    cfg.media.rtp_port_max = p.saturating_add(1998);
                }
                if *enumeration_safe {
                    cfg.variables
                        .insert("enumeration_safe".into(), "true".into());
                }
                let loaded = Loaded::from_config(cfg)?;
                crate::runtime::server::serve(loaded, None, CancellationToken::new(), |b| {
                    let reset = b.reset_attempt_limits.clone();
                    demo.on_reset(move || reset.run());
                    print!("{}", b.banner());
                    println!(
                        "  demo        {base}  (users: 123456 happy, 234567 email, 345678 locked)"
                    );
                    println!(
                        "  calls       any user for the password reset, `echo` for the echo flow"
                    );
                    println!("  try         sspr-ivr dial sip:reset@{} --stdin", b.sip);
                    println!(
                        "  reset       curl -X POST {base}/demo/reset  (directory, codes, audit, attempt limits)"
                    );
                })
                .await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoBackend {
            listen,
            sms_delay,
            fixed_otp,
        } => {
            init_logging(&cli, None, None);
            let delay = crate::duration::parse(sms_delay)?;
            runtime()?.block_on(async {
                let demo = crate::demo::DemoBackend::start(crate::demo::DemoOptions {
                    bind: *listen,
                    sms_delay: delay,
                    fixed_code: fixed_otp.clone(),
                    ..Default::default()
                })
                .await
                .context("start the demo backend")?;
                println!("sspr-ivr demo backend listening on {}", demo.base_url());
                tokio::signal::ctrl_c().await.ok();
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            init_logging(&cli, None, Some("warn"));
            let result = Config::load(config).and_then(Loaded::from_config);
            match result {
                Ok(loaded) => {
                    if let Err(e) = crate::actions::Executor::new(loaded.config.actions.clone()) {
                        let e = report::without_os_error(&e.to_string());
                        eprintln!("{}: actions: {e}", config.display());
                        return Ok(ExitCode::from(1));
                    }
                    println!(
                        "{}: ok ({} flows, {} prompts, {} actions)",
                        config.display(),
                        loaded.flows.len(),
                        loaded.catalog.prompts.len(),
                        loaded.catalog.actions.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}", report(&e.into()));
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Graph { flow, format } => {
            let f = crate::files::load_flow(flow)?;
            let text = match format {
                GraphFormat::Dot => crate::flow::graph::to_dot(&f),
                GraphFormat::Mermaid => crate::flow::graph::to_mermaid(&f),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Dial(args) => {
            init_logging(&cli, None, Some("warn"));
            let rt = runtime()?;
            let result = rt.block_on(crate::runtime::dial::run(args.clone()));
            // A pending read of standard input (`--stdin`) sits on a blocking
            // thread; do not wait for it.
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Load(args) => {
            init_logging(&cli, None, Some("warn"));
            let ok = crate::runtime::load::run(args.clone())?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Dtmf { file } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
            let digits = crate::media::detect_digits(file, &bytes)?;
            println!("{digits}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            docs::to_stdout(&docs::completions(*shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: None } => {
            docs::to_stdout(&docs::man_page()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: Some(dir) } => {
            for path in docs::write_man_pages(dir)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// For tests: the data root that `demo` would use.
pub fn demo_data_root() -> PathBuf {
    data_root()
}

/// The demo's media address: the IP SIP listens on, so that a caller who reaches
/// the demo over IPv6 (`--sip [::1]:5060`) or at another of the host's addresses
/// is offered media it can reach; loopback of the same family for a wildcard.
fn demo_media_ip(sip: SocketAddr) -> IpAddr {
    match sip.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_offers_media_on_its_sip_address() {
        let ip = |s: &str| demo_media_ip(s.parse().unwrap()).to_string();
        assert_eq!(ip("127.0.0.1:5060"), "127.0.0.1");
        assert_eq!(ip("[::1]:5060"), "::1");
        assert_eq!(ip("192.0.2.10:5060"), "192.0.2.10");
        assert_eq!(ip("0.0.0.0:5060"), "127.0.0.1");
        assert_eq!(ip("[::]:5060"), "::1");
    }
}
