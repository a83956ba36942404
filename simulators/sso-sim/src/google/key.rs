//! The RSA key a test's service account signs its assertions with, in the PEM forms of Google's
//! JSON key file.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// An RSA key pair for tests only, generated at run time: never a real service account's key.
#[derive(Clone)]
pub struct TestKey {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form of `private_key` in Google's JSON key file.
    pub private_pem: String,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A fresh 2048-bit key pair.
    pub fn generate() -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let private = pair.as_der().expect("PKCS#8 encoding");
        let public = pair.public_key().as_der().expect("SPKI encoding");
        TestKey {
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// One key pair per process (key generation takes a moment): the default of [`GoogleConfig`].
    pub fn shared() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(TestKey::generate)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub(super) fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    STANDARD.decode(b64).ok()
}
