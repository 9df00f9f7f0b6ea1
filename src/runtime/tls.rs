//! SIP over TLS (RFC 3261 §26.2, RFC 5630): the certificate store and the
//! accept loop.
//!
//! [`server_config`] reads `sip.tls`'s PEM files into a rustls
//! [`ServerConfig`]; the config loader calls it, so `check` finds a broken
//! certificate and a SIGHUP that brings one is rejected whole (the old
//! certificate stays). [`accept`] takes the configuration of the moment for
//! every new connection: after a reload the next handshake presents the new
//! certificate, while established connections keep theirs and are never
//! dropped. Once the handshake is done, the connection is framed exactly like
//! TCP ([`tcp::connection`]), tagged [`Transport::Tls`].
//!
//! Only TLS 1.2 and 1.3 with rustls' safe defaults (ring provider). With
//! `client_ca_file` every peer must present a certificate that chains to one of
//! those CAs (mutual TLS); without it no client certificate is asked for. No
//! SNI-based certificate choice, no OCSP stapling, no session tickets beyond
//! rustls' defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::SipTlsConfig;
use crate::runtime::shared::Shared;
use crate::runtime::tcp;

pub use tokio_rustls::rustls::ServerConfig;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{field} {}: {message}", path.display())]
    File {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("client_ca_file: {0}")]
    ClientCa(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(field: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        field,
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Every certificate in a PEM file; at least one.
fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(field, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(field, path, e))?;
    if certs.is_empty() {
        return Err(file_error(field, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// Read `sip.tls`'s files into a rustls server configuration.
pub fn server_config(cfg: &SipTlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs("cert_file", &cfg.cert_file)?;
    // The error never quotes the file: it holds a private key.
    let key = PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_string()
            }
            _ => "not a readable PEM private key".to_string(),
        };
        file_error("key_file", &cfg.key_file, why)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("client_ca_file", path)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("client_ca_file", path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // with_single_cert parses the key and checks that it belongs to the leaf
    // certificate; rustls' message names neither file, so say which.
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                format!("does not belong to cert_file {}", cfg.cert_file.display())
            }
            other => format!("not a usable private key ({other})"),
        };
        file_error("key_file", &cfg.key_file, why)
    })?;
    Ok(Arc::new(config))
}

/// Accept TLS connections until `stop`; each one handshakes in its own task.
/// At most `max_connections` at once: a permit is taken before `accept`, so
/// a limit that is reached costs nothing (the kernel queues the rest).
pub async fn accept(
    listener: TcpListener,
    max_connections: usize,
    shared: Arc<Shared>,
    ctx: Arc<tcp::Context>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let loaded = shared.loaded();
                    let (Some(config), Some(tls)) = (loaded.sip_tls.clone(), &loaded.config.sip.tls)
                    else {
                        // A reload removed `sip.tls`: the port stays bound
                        // until restart, but nothing is served on it.
                        debug!(%peer, "SIP TLS is no longer configured; closing");
                        continue;
                    };
                    // The TCP caps (in all, per source) apply to TLS too.
                    let Some(slot) = ctx.admit(peer) else {
                        continue;
                    };
                    tokio::spawn(handshake(
                        (permit, slot),
                        stream,
                        peer,
                        config,
                        tls.handshake_timeout,
                        ctx.clone(),
                        stop.clone(),
                    ));
                }
                Err(e) => {
                    warn!(error = %e, "SIP TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Complete the handshake within `timeout`, then serve the connection as SIP;
/// the connection's `permit` is given back when it closes.
async fn handshake(
    (_permit, slot): (OwnedSemaphorePermit, tcp::Slot),
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    timeout: Duration,
    ctx: Arc<tcp::Context>,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    let result = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
    };
    match result {
        Ok(Ok(tls)) => ctx.serve(tls, peer, slot).await,
        // Peer-controlled: debug only, or a scanner could fill the log.
        Ok(Err(e)) => debug!(%peer, error = %e, "SIP TLS handshake failed"),
        Err(_) => debug!(%peer, "SIP TLS handshake timed out"),
    }
}
