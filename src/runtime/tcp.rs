//! SIP over TCP (RFC 3261 §18.3): the accept loop and one task per connection.
//!
//! Each connection frames its byte stream into messages with
//! [`StreamDecoder`] and hands them to the SIP task; responses for the peer come
//! back through the connection's write queue. A framing error closes the
//! connection, since a stream cannot be resynchronised.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::runtime::channels::SipIn;
use crate::sip::framing::StreamDecoder;
use crate::sip::Transport;

pub async fn accept(
    listener: TcpListener,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    tokio::spawn(connection(stream, peer, Transport::Tcp, sip_tx.clone(), stop.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One SIP-over-TCP connection: Content-Length framing in, a writer queue
/// out. A framing error closes the connection (RFC 3261 §18.3). TLS
/// connections ([`crate::runtime::tls`]) run here too, once their handshake is done.
pub(crate) async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
    let _ = sip_tx.send(SipIn::TcpOpened {
        transport,
        peer,
        writer: wtx,
    });
    let writer = tokio::spawn(async move {
        while let Some(buf) = wrx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let mut decoder = StreamDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = rd.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    let _ = sip_tx.send(SipIn::Tcp {
                        transport,
                        peer,
                        data: msg,
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "SIP TCP framing error; closing");
                    let _ = sip_tx.send(SipIn::TcpClosed { transport, peer });
                    writer.abort();
                    return;
                }
            }
        }
    }
    let _ = sip_tx.send(SipIn::TcpClosed { transport, peer });
    writer.abort();
}
