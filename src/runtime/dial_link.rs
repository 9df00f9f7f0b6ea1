//! How `dial` carries SIP: a UDP socket, or one TCP or TLS connection to the
//! target (RFC 3261 §18), chosen by the target URI (`sips:` or
//! `;transport=tls`, `;transport=tcp`). On a stream, messages are framed by
//! Content-Length like the server does ([`StreamDecoder`]), and every message
//! of the call — the INVITE, ACK, BYE, INFO and the server's requests — uses
//! the one connection.
//!
//! TLS verifies the server against `--tls-ca` (no system roots: a test caller
//! talks to test servers) under the name `--tls-server-name` or the URI's
//! host, and can present a client certificate for mutual TLS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::sip::framing::StreamDecoder;
use crate::sip::Transport;

/// `dial`'s TLS options.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM CA certificate(s) the server's certificate must chain to (TLS targets).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Name to verify the server's certificate against; default: the URI's host.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// PEM client certificate chain to present (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A byte stream SIP can run over (TCP, or TLS on TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub enum SipLink {
    Udp(UdpSocket),
    Stream {
        io: Box<dyn Stream>,
        decoder: StreamDecoder,
        peer: SocketAddr,
        local: SocketAddr,
    },
}

/// Bound on connecting and the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl SipLink {
    /// Bind (UDP) or connect (TCP, TLS) to `peer` from `local_ip`.
    pub async fn open(
        transport: Transport,
        local_ip: IpAddr,
        peer: SocketAddr,
        tls: &TlsArgs,
    ) -> anyhow::Result<SipLink> {
        if transport == Transport::Udp {
            return Ok(SipLink::Udp(
                UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?,
            ));
        }
        let socket = if local_ip.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local_ip, 0))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
            .await
            .with_context(|| format!("connect to {peer}: timed out"))?
            .with_context(|| format!("connect to {peer}"))?;
        let local = tcp.local_addr()?;
        let io: Box<dyn Stream> = if transport == Transport::Tls {
            let connector = TlsConnector::from(client_config(tls)?);
            let name = match &tls.tls_server_name {
                Some(n) => ServerName::try_from(n.clone()).context("--tls-server-name")?,
                None => ServerName::IpAddress(peer.ip().into()),
            };
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .context("TLS handshake: timed out")?
                .context("TLS handshake")?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        Ok(SipLink::Stream {
            io,
            decoder: StreamDecoder::new(),
            peer,
            local,
        })
    }

    /// Our address as it goes into Via and Contact.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            SipLink::Udp(s) => s.local_addr(),
            SipLink::Stream { local, .. } => Ok(*local),
        }
    }

    pub async fn send(&mut self, payload: &[u8], to: SocketAddr) -> anyhow::Result<()> {
        match self {
            SipLink::Udp(s) => {
                s.send_to(payload, to).await?;
            }
            SipLink::Stream { io, .. } => {
                io.write_all(payload).await?;
                io.flush().await?;
            }
        }
        Ok(())
    }

    /// The next message and who sent it. Cancel-safe: bytes read are kept in
    /// the decoder before the next await.
    pub async fn recv(&mut self, buf: &mut [u8]) -> anyhow::Result<(Vec<u8>, SocketAddr)> {
        match self {
            SipLink::Udp(s) => {
                let (n, from) = s.recv_from(buf).await?;
                Ok((buf[..n].to_vec(), from))
            }
            SipLink::Stream {
                io, decoder, peer, ..
            } => loop {
                if let Some(msg) = decoder.next_message()? {
                    return Ok((msg, *peer));
                }
                let n = io.read(buf).await?;
                if n == 0 {
                    bail!("the server closed the SIP connection");
                }
                decoder.push(&buf[..n]);
            },
        }
    }
}

fn client_config(tls: &TlsArgs) -> anyhow::Result<Arc<ClientConfig>> {
    let Some(ca) = &tls.tls_ca else {
        bail!("a TLS target needs --tls-ca FILE (the CA that signed the server's certificate)");
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("{}", ca.display()))? {
        roots
            .add(cert.with_context(|| format!("{}", ca.display()))?)
            .with_context(|| format!("{}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("{}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| anyhow::anyhow!("{}: not a PEM private key", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
