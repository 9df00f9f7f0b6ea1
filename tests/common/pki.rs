//! A private CA for TLS tests (rcgen): server and client leaves for 127.0.0.1,
//! written where a test's config points.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls::RootCertStore;

/// A private CA that signs server and client certificates into a temp dir.
pub struct Pki {
    ca: Certificate,
    ca_key: KeyPair,
    name: &'static str,
}

impl Pki {
    pub fn new(name: &'static str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key, name }
    }

    /// A leaf for 127.0.0.1 and ::1 with this common name: (certificate PEM, key PEM, DER).
    pub fn leaf(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["ivr.test".to_string()]).unwrap();
        for ip in ["127.0.0.1", "::1"] {
            params
                .subject_alt_names
                .push(SanType::IpAddress(ip.parse().unwrap()));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.pem", self.name.replace(' ', "_")));
        std::fs::write(&path, self.ca.pem()).unwrap();
        path
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        roots
    }
}

/// Write the server's certificate and key where the config points.
pub fn install_server_cert(dir: &Path, pki: &Pki, cn: &str) -> Vec<u8> {
    let (cert, key, der) = pki.leaf(cn, ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.join("sip.pem"), cert).unwrap();
    std::fs::write(dir.join("sip.key"), key).unwrap();
    der
}
