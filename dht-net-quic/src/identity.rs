//! Keys as identities: the node's ed25519 key, its self-signed certificate, the
//! verifiers that accept a peer by its key alone, and the key file.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, SignatureScheme,
};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE {
/// OID 1.3.101.112 }, BIT STRING (0 unused bits) }, followed by the 32 key bytes.
/// Ed25519 SPKIs have exactly this shape, so a byte comparison is a full parse.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The only crypto provider this crate uses, built explicitly rather than taken from a
/// process-wide default: two providers compiled in make rustls refuse to pick one.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The ed25519 public key inside a DER certificate, or why there is none.
pub(crate) fn ed25519_key_of(cert: &CertificateDer<'_>) -> Result<[u8; 32], TlsError> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let bytes: &[u8] = spki.as_ref();
    match bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) => <[u8; 32]>::try_from(key)
            .map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding)),
        // Any other algorithm: the DHT id is derived from an ed25519 key only.
        None => Err(TlsError::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        )),
    }
}

/// A self-signed certificate for `key`, and the key in the form rustls wants.
///
/// Nothing in the certificate but its public key is ever looked at by a peer of this
/// crate (names, dates and the self-signature are not checked), so it is made once
/// at bind time and never renewed.
pub(crate) fn certificate(
    key: &SigningKey,
) -> io::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| io::Error::other(format!("encoding the ed25519 key: {e}")))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .map_err(|e| io::Error::other(format!("loading the ed25519 key: {e}")))?;
    let cert = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
        .and_then(|p| p.self_signed(&key_pair))
        .map_err(|e| io::Error::other(format!("self-signing the certificate: {e}")))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The name a client asks for. Certificates are not checked against it (the key is
/// the identity), but TLS wants one.
pub(crate) const SERVER_NAME: &str = "dht-node";

/// Accepts a peer whose end-entity certificate holds an ed25519 key and who proves,
/// in the TLS 1.3 handshake, that it holds the matching private key. No certificate
/// authority, name or date is consulted.
#[derive(Debug)]
pub(crate) struct KeyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl KeyVerifier {
    pub(crate) fn new(provider: &CryptoProvider) -> KeyVerifier {
        KeyVerifier {
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        // Only ed25519 is offered; a peer signing with anything else is refused even
        // if the signature would verify.
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(TlsError::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        ed25519_key_of(cert)?;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for KeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        ed25519_key_of(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        // QUIC is TLS 1.3 only.
        Err(TlsError::General("TLS 1.2 is not used over QUIC".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for KeyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    // Both ends must learn the other's key: a query's sender is authenticated just
    // like a reply's.
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        ed25519_key_of(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::General("TLS 1.2 is not used over QUIC".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// A fresh ed25519 key from the operating system's random source.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut rand_core::OsRng)
}

/// Loads the node key from `path` (the 32-byte ed25519 seed, nothing else), or
/// generates one and writes it there if the file does not exist.
///
/// The file is created readable by its owner only (on Unix) and written under a
/// temporary name then renamed, so a crash never leaves a half-written key that
/// would silently give the node a new identity. A file of any other length is an
/// error (`InvalidData`), never replaced: losing the key changes the node id.
pub fn load_or_generate_key(path: &Path) -> io::Result<SigningKey> {
    match fs::read(path) {
        Ok(bytes) => {
            let seed = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: a node key file holds 32 bytes, this one {}",
                        path.display(),
                        bytes.len()
                    ),
                )
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = generate_key();
            let tmp = path.with_extension("tmp");
            let mut options = fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            file.write_all(key.as_bytes())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, path)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
