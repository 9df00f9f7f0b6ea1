//! Secure data actions over real HTTPS: a private CA and server certificate
//! generated at test time (rcgen), a loopback TLS server (tokio-rustls) that
//! answers like the demo's `POST /users/{id}/pin`, and the `tls:` option
//! (`ca_file`, mTLS `client_cert_file`/`client_key_file`) plus its load-time
//! checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::Value as Json;
use sspr_ivr::actions::{ActionConfig, Executor};
use sspr_ivr::secret::Secret;
use sspr_ivr::vars::Vars;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Bound on every single network wait in this file.
const WAIT: Duration = Duration::from_secs(5);

struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sspr-ivr test IdP CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            ca,
            ca_key,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A leaf signed by this CA: (certificate, key).
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "sspr-ivr test leaf");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert, key)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    connections: usize,
    /// Requests read after a completed handshake: (request line, body, client cert?).
    requests: Vec<(String, String, bool)>,
}

/// An HTTPS server on a loopback ephemeral port, answering like the demo's
/// PIN reset. With `client_ca`, a client certificate from that CA is required.
async fn https_server(pki: &Pki, client_ca: bool) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let (cert, key) = pki.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_ca {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            log.lock().unwrap().connections += 1;
            let acceptor = acceptor.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(WAIT, async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return; // the client refused our certificate, or we its
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    let Some((line, body)) = read_request(&mut tls).await else {
                        return;
                    };
                    log.lock()
                        .unwrap()
                        .requests
                        .push((line, body.clone(), client_cert));
                    let pin = serde_json::from_str::<Json>(&body)
                        .ok()
                        .and_then(|j| j.get("pin").and_then(Json::as_str).map(str::to_string));
                    let (status, answer) = match pin.as_deref() {
                        Some("111111") => ("400 Bad Request", r#"{"errorCode":"PIN_TOO_SIMPLE"}"#),
                        Some(_) => ("200 OK", r#"{"status":"reset"}"#),
                        None => ("400 Bad Request", r#"{"errorCode":"BAD_REQUEST"}"#),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                })
                .await;
            });
        }
    });
    (addr, seen)
}

/// Read one HTTP/1.1 request with a Content-Length body: (request line, body).
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let line = head.lines().next()?.to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some((line, body))
}

/// The demo-like `reset_pin` action; `tls` is the YAML of its `tls:` block.
fn reset_pin(url_base: &str, tls: Option<&str>) -> String {
    let tls = tls.map(|t| format!("  tls: {t}\n")).unwrap_or_default();
    format!(
        "reset_pin:\n  method: POST\n  url: \"{url_base}/users/{{{{ user_id }}}}/pin\"\n  \
         secure: true\n  timeout: 3s\n{tls}  body:\n    json: {{ pin: \"{{{{ new_pin }}}}\" }}\n  \
         outcomes:\n    - {{ status: 200, field: /status, equals: reset, outcome: ok }}\n    \
         - {{ status: 400, field: /errorCode, equals: PIN_TOO_SIMPLE, outcome: too_simple }}\n"
    )
}

fn load(yaml: &str) -> Result<Executor, String> {
    let actions: BTreeMap<String, ActionConfig> =
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    Executor::with_env(actions, |_| None).map_err(|e| e.to_string())
}

fn vars(pin: &str) -> Vars {
    let mut v = Vars::new();
    v.set_plain("user_id", "u1001");
    v.set_secret("new_pin", Secret::new(pin.to_string()));
    v
}

async fn run(exec: &Executor, pin: &str) -> sspr_ivr::actions::ActionResult {
    tokio::time::timeout(Duration::from_secs(15), exec.run("reset_pin", &vars(pin)))
        .await
        .expect("the action finished within its bound")
}

fn ca_pem(pki: &Pki) -> PathBuf {
    pki.write("idp-ca.pem", &pki.ca.pem())
}

fn path_yaml(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[tokio::test]
async fn secure_action_over_https_with_private_ca_sends_the_pin() {
    let pki = Pki::new();
    let (addr, seen) = https_server(&pki, false).await;
    let ca = ca_pem(&pki);
    let exec = load(&reset_pin(
        &format!("https://127.0.0.1:{}", addr.port()),
        Some(&format!("{{ ca_file: {} }}", path_yaml(&ca))),
    ))
    .unwrap();
    let r = run(&exec, "482913").await;
    assert_eq!(r.outcome, "ok", "{r:?}");
    assert_eq!(r.status, Some(200));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 1);
    let (line, body, _) = &seen.requests[0];
    assert_eq!(line, "POST /users/u1001/pin HTTP/1.1");
    let doc: Json = serde_json::from_str(body).unwrap();
    assert_eq!(doc, serde_json::json!({"pin": "482913"}));
}

#[tokio::test]
async fn without_the_ca_the_certificate_is_not_trusted_and_nothing_is_sent() {
    let pki = Pki::new();
    let (addr, seen) = https_server(&pki, false).await;
    let exec = load(&reset_pin(
        &format!("https://127.0.0.1:{}", addr.port()),
        None,
    ))
    .unwrap();
    let r = run(&exec, "482913").await;
    assert_eq!(r.outcome, "error", "{r:?}");
    assert_eq!(r.status, None);
    // The server counts a connection before it sends its certificate, so
    // the count is settled once the client has refused that certificate.
    {
        let seen = seen.lock().unwrap();
        assert!(seen.connections >= 1, "the client did reach the server");
        assert!(
            seen.requests.is_empty(),
            "no request after a failed handshake"
        );
    }

    // A CA file with a different CA is not enough either.
    let other = Pki::new();
    let wrong = ca_pem(&other);
    let exec = load(&reset_pin(
        &format!("https://127.0.0.1:{}", addr.port()),
        Some(&format!("{{ ca_file: {} }}", path_yaml(&wrong))),
    ))
    .unwrap();
    assert_eq!(run(&exec, "482913").await.outcome, "error");
    let seen = seen.lock().unwrap();
    assert!(seen.connections >= 2, "the client did reach the server");
    assert!(seen.requests.is_empty());
}

#[test]
fn secure_action_over_plain_http_to_a_remote_host_is_refused_at_load() {
    for base in ["http://idp.example.com", "http://10.1.2.3:8080"] {
        let err = load(&reset_pin(base, None)).err().expect("refused");
        assert!(err.contains("https"), "{err}");
        let yaml = reset_pin(base, None).replace(
            "  secure: true\n",
            "  secure: true\n  allow_insecure_http: true\n",
        );
        let err = load(&yaml).err().expect("refused even when allowed");
        assert!(err.contains("loopback"), "{err}");
    }
}

#[tokio::test]
async fn outcome_rules_over_tls_and_localhost_name() {
    let pki = Pki::new();
    let (addr, seen) = https_server(&pki, false).await;
    let ca = ca_pem(&pki);
    let exec = load(&reset_pin(
        &format!("https://localhost:{}", addr.port()),
        Some(&format!("{{ ca_file: {} }}", path_yaml(&ca))),
    ))
    .unwrap();
    let r = run(&exec, "111111").await;
    assert_eq!(r.outcome, "too_simple", "{r:?}");
    assert_eq!(r.status, Some(400));
    let r = run(&exec, "730194").await;
    assert_eq!(r.outcome, "ok", "{r:?}");
    assert_eq!(seen.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn ca_file_bundle_with_several_certificates() {
    let pki = Pki::new();
    let other = Pki::new();
    let (addr, _) = https_server(&pki, false).await;
    let bundle = pki.write(
        "bundle.pem",
        &format!("{}\n{}", other.ca.pem(), pki.ca.pem()),
    );
    let exec = load(&reset_pin(
        &format!("https://127.0.0.1:{}", addr.port()),
        Some(&format!("{{ ca_file: {} }}", path_yaml(&bundle))),
    ))
    .unwrap();
    assert_eq!(run(&exec, "482913").await.outcome, "ok");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let (addr, seen) = https_server(&pki, true).await;
    let ca = ca_pem(&pki);
    let (client, client_key) = pki.leaf(&["ivr.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = pki.write("ivr.pem", &client.pem());
    let key_file = pki.write("ivr.key", &client_key.serialize_pem());
    let base = format!("https://127.0.0.1:{}", addr.port());

    // Trusting the server is not enough: it wants a client certificate.
    let exec = load(&reset_pin(
        &base,
        Some(&format!("{{ ca_file: {} }}", path_yaml(&ca))),
    ))
    .unwrap();
    assert_eq!(run(&exec, "482913").await.outcome, "error");
    assert!(seen.lock().unwrap().requests.is_empty());

    let exec = load(&reset_pin(
        &base,
        Some(&format!(
            "{{ ca_file: {}, client_cert_file: {}, client_key_file: {} }}",
            path_yaml(&ca),
            path_yaml(&cert_file),
            path_yaml(&key_file)
        )),
    ))
    .unwrap();
    let r = run(&exec, "482913").await;
    assert_eq!(r.outcome, "ok", "{r:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.requests.len(), 1);
    assert!(seen.requests[0].2, "the server saw a client certificate");
}

#[test]
fn bad_tls_files_fail_at_load_naming_the_file() {
    let pki = Pki::new();
    let base = "https://idp.example.com";
    let tls = |t: String| load(&reset_pin(base, Some(&t))).err().expect("refused");

    let missing = pki.dir.path().join("no-such-ca.pem");
    let err = tls(format!("{{ ca_file: {} }}", path_yaml(&missing)));
    assert!(
        err.contains("no-such-ca.pem") && err.contains("ca_file"),
        "{err}"
    );

    let text = pki.write("not-pem.pem", "this is not a certificate\n");
    let err = tls(format!("{{ ca_file: {} }}", path_yaml(&text)));
    assert!(
        err.contains("not-pem.pem") && err.contains("no PEM certificate"),
        "{err}"
    );

    // Well-formed PEM armour around bytes that are no X.509 certificate.
    let junk = pki.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let err = tls(format!("{{ ca_file: {} }}", path_yaml(&junk)));
    assert!(
        err.contains("junk.pem") && err.contains("not a valid X.509"),
        "{err}"
    );

    // Broken base64 inside the armour.
    let broken = pki.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let err = tls(format!("{{ ca_file: {} }}", path_yaml(&broken)));
    assert!(
        err.contains("broken.pem") && err.contains("not a valid PEM"),
        "{err}"
    );

    // A private key where the CA should be is not a certificate.
    let key = pki.write("key-as-ca.pem", &pki.ca_key.serialize_pem());
    let err = tls(format!("{{ ca_file: {} }}", path_yaml(&key)));
    assert!(
        err.contains("key-as-ca.pem") && err.contains("no PEM certificate"),
        "{err}"
    );

    // mTLS: both files or neither; a key that is no key names the key file.
    let ca = ca_pem(&pki);
    let err = tls(format!(
        "{{ ca_file: {}, client_cert_file: {} }}",
        path_yaml(&ca),
        path_yaml(&ca)
    ));
    assert!(err.contains("client_key_file"), "{err}");
    let (client, _) = pki.leaf(&["ivr.test"], ExtendedKeyUsagePurpose::ClientAuth);
    let cert_file = pki.write("ivr.pem", &client.pem());
    let err = tls(format!(
        "{{ client_cert_file: {}, client_key_file: {} }}",
        path_yaml(&cert_file),
        path_yaml(&text)
    ));
    assert!(
        err.contains("not-pem.pem") && err.contains("client_key_file"),
        "{err}"
    );

    // A well-formed key that belongs to another certificate.
    let other_key = pki.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
    let err = tls(format!(
        "{{ client_cert_file: {}, client_key_file: {} }}",
        path_yaml(&cert_file),
        path_yaml(&other_key)
    ));
    assert!(
        err.contains("other.key") && err.contains("matching"),
        "{err}"
    );
    // No secret material in any message.
    assert!(!err.contains("PRIVATE KEY"), "{err}");

    // Unknown fields, an empty block and plain http are refused.
    let err = tls(format!("{{ ca_fil: {} }}", path_yaml(&ca)));
    assert!(err.contains("ca_fil"), "{err}");
    let err = tls("{}".to_string());
    assert!(err.contains("ca_file"), "{err}");
    let yaml = reset_pin(
        "http://127.0.0.1:9",
        Some(&format!("{{ ca_file: {} }}", path_yaml(&ca))),
    )
    .replace(
        "  secure: true\n",
        "  secure: true\n  allow_insecure_http: true\n",
    );
    let err = load(&yaml).err().expect("refused");
    assert!(err.contains("https"), "{err}");

    // And the good file loads.
    load(&reset_pin(
        base,
        Some(&format!("{{ ca_file: {} }}", path_yaml(&ca))),
    ))
    .unwrap();
}
