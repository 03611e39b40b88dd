//! HTTPS for third-party clients (the official Python SDK insists on https). On first use a
//! private CA (`data_dir/tls/ca.pem`, the file clients trust) and a server certificate it
//! signs for `localhost`, `127.0.0.1`, `::1` (and the bind address) are generated and kept;
//! served with rustls on the ring provider. (OpenSSL-based clients refuse a bare self-signed
//! leaf as a trust anchor, hence the two-level chain.)

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::{EmulatorError, io_error};

/// The certificate (PEM) clients must trust, and the server config.
pub struct Tls {
    /// `data_dir/tls/ca.pem`: the self-signed CA that signed the server certificate.
    pub cert_path: PathBuf,
    acceptor: TlsAcceptor,
}

fn tls_error(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Config(format!("TLS: {e}"))
}

impl Tls {
    /// Loads `dir/tls/{cert,key}.pem`, generating them first if missing.
    pub fn load_or_create(dir: &Path, bind: IpAddr) -> Result<Tls, EmulatorError> {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir).map_err(io_error(&tls_dir))?;
        let ca_path = tls_dir.join("ca.pem");
        let cert_path = tls_dir.join("cert.pem");
        let key_path = tls_dir.join("key.pem");
        if !ca_path.exists() || !cert_path.exists() || !key_path.exists() {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
            if !bind.is_unspecified() && !names.contains(&bind.to_string()) {
                names.push(bind.to_string());
            }
            let (ca_pem, chain_pem, key_pem) = generate(names)?;
            // The CA last: its presence marks a complete set.
            std::fs::write(&key_path, key_pem).map_err(io_error(&key_path))?;
            std::fs::write(&cert_path, chain_pem).map_err(io_error(&cert_path))?;
            std::fs::write(&ca_path, ca_pem).map_err(io_error(&ca_path))?;
        }
        let cert_pem = std::fs::read(&cert_path).map_err(io_error(&cert_path))?;
        let key_pem = std::fs::read(&key_path).map_err(io_error(&key_path))?;
        let certs = rustls_pemfile_certs(&cert_pem)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(pem_body(&key_pem, "PRIVATE KEY")?)
            .map_err(tls_error)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls_error)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert_path: ca_path,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Serves `router` over TLS until `stop` fires; each connection runs in its own task.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = &mut stop => return,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let acceptor = self.acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!(%err, "TLS handshake failed");
                        return;
                    }
                };
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(err) = served {
                    tracing::debug!(%err, "HTTPS connection ended with an error");
                }
            });
        }
    }
}

/// A CA and a server certificate it signs: (CA PEM, server chain PEM, server key PEM). The
/// CA's key is thrown away.
fn generate(names: Vec<String>) -> Result<(String, String, String), EmulatorError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Ferry Dropbox emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let ca = ca_params.self_signed(&ca_key).map_err(tls_error)?;
    let mut params = CertificateParams::new(names).map_err(tls_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().map_err(tls_error)?;
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(tls_error)?;
    Ok((
        ca.pem(),
        format!("{}{}", cert.pem(), ca.pem()),
        key.serialize_pem(),
    ))
}

/// The DER bytes of the first PEM block labelled `label` (`PRIVATE KEY` matches any
/// `… PRIVATE KEY`).
fn pem_body(pem: &[u8], label: &str) -> Result<Vec<u8>, EmulatorError> {
    pem_blocks(pem)?
        .into_iter()
        .find(|(l, _)| l.ends_with(label))
        .map(|(_, der)| der)
        .ok_or_else(|| tls_error(format!("no {label} in PEM")))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, EmulatorError> {
    let certs: Vec<_> = pem_blocks(pem)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| rustls::pki_types::CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(tls_error("no certificate in PEM"));
    }
    Ok(certs)
}

/// Minimal PEM reader: `(label, der)` for each block.
fn pem_blocks(pem: &[u8]) -> Result<Vec<(String, Vec<u8>)>, EmulatorError> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).map_err(tls_error)?;
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if line.starts_with("-----END ") {
            if let Some((label, body)) = current.take() {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_err(tls_error)?;
                blocks.push((label, der));
            }
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    Ok(blocks)
}
