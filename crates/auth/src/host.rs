//! Host agent credentials.
//!
//! - A bootstrap secret is handed to each instance at launch. Only its argon2 hash is
//!   stored, and it is good for one registration.
//! - Registration returns a host token: 256 random bits with a `host_` prefix, stored as
//!   its SHA-256. A token with that much entropy needs no slow hash, so checking a
//!   heartbeat costs one digest, never argon2. A user's JWT can never be mistaken for it,
//!   nor it for a JWT.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;

const HOST_TOKEN_PREFIX: &str = "host_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the system random number generator failed")]
    Random,
    #[error("hashing the secret failed")]
    Hash(#[source] argon2::password_hash::Error),
}

fn random_base64url() -> Result<String, CredentialError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CredentialError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh bootstrap secret for an instance, and the argon2 hash to store for it.
pub fn new_bootstrap_secret() -> Result<(SecretString, String), CredentialError> {
    let secret = random_base64url()?;
    let hash = Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(CredentialError::Hash)?
        .to_string();
    Ok((SecretString::from(secret), hash))
}

/// Whether `secret` is the one `hash` was made from. Slow by design (argon2).
pub fn bootstrap_secret_matches(secret: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(secret.as_bytes(), hash)
        .is_ok()
}

/// A fresh host token, and the digest to store for it.
pub fn new_host_token() -> Result<(SecretString, String), CredentialError> {
    let token = format!("{HOST_TOKEN_PREFIX}{}", random_base64url()?);
    let digest = digest(&token);
    Ok((SecretString::from(token), digest))
}

/// The stored digest of a host token, or `None` when `token` is not shaped like one.
pub fn host_token_digest(token: &str) -> Option<String> {
    let random = token.strip_prefix(HOST_TOKEN_PREFIX)?;
    let well_formed = random.len() == 43
        && random
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then(|| digest(token))
}

/// The scheme of the `Authorization` header the control plane sends with a host's
/// `POST /drain_and_shutdown`.
pub const DRAIN_SCHEME: &str = "Drain";

/// The `Authorization` header value that proves to `instance`'s host agent that a
/// `POST /drain_and_shutdown` comes from the control plane, at `unix_secs`:
/// `Drain t=<unix_secs>, sig=<hex>`, where `sig` is the HMAC-SHA256, keyed with the
/// host credential's stored digest (lowercase hex, as ASCII), of
/// `POST /drain_and_shutdown\n<instance>\n<unix_secs>`. The agent, which holds the
/// credential, computes the same digest; the credential itself never travels, and a
/// signature is good only for that instance and a few minutes.
pub fn drain_authorization(host_token_sha256: &str, instance: &str, unix_secs: u64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, host_token_sha256.as_bytes());
    let message = format!("POST /drain_and_shutdown\n{instance}\n{unix_secs}");
    let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
    format!(
        "{DRAIN_SCHEME} t={unix_secs}, sig={}",
        crate::hex(tag.as_ref())
    )
}

fn digest(token: &str) -> String {
    crate::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn drain_authorizations_name_their_instance_and_time() {
        let (_, digest) = new_host_token().unwrap();
        let header = drain_authorization(&digest, "host-a", 1_700_000_000);
        assert!(header.starts_with("Drain t=1700000000, sig="), "{header}");
        assert_eq!(header.len(), "Drain t=1700000000, sig=".len() + 64);
        assert_eq!(
            header,
            drain_authorization(&digest, "host-a", 1_700_000_000)
        );
        assert_ne!(
            header,
            drain_authorization(&digest, "host-b", 1_700_000_000)
        );
        assert_ne!(
            header,
            drain_authorization(&digest, "host-a", 1_700_000_001)
        );
        let (_, other) = new_host_token().unwrap();
        assert_ne!(header, drain_authorization(&other, "host-a", 1_700_000_000));
    }

    #[test]
    fn bootstrap_secrets_verify_only_against_their_hash() {
        let (secret, hash) = new_bootstrap_secret().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(secret.expose_secret()));
        assert!(bootstrap_secret_matches(secret.expose_secret(), &hash));
        let (other, _) = new_bootstrap_secret().unwrap();
        assert!(!bootstrap_secret_matches(other.expose_secret(), &hash));
        assert!(!bootstrap_secret_matches("", &hash));
        assert!(!bootstrap_secret_matches(
            secret.expose_secret(),
            "not a hash"
        ));
    }

    #[test]
    fn host_tokens_are_recognised_by_shape_and_stored_as_digests() {
        let (token, digest) = new_host_token().unwrap();
        let token = token.expose_secret();
        assert!(token.starts_with("host_"));
        assert_eq!(host_token_digest(token).as_deref(), Some(digest.as_str()));
        assert_eq!(digest.len(), 64);
        let (other, _) = new_host_token().unwrap();
        assert_ne!(host_token_digest(other.expose_secret()), Some(digest));
        for not_a_token in [
            "",
            "host_",
            "host_short",
            "eyJhbGciOiJSUzI1NiJ9.e30.sig",
            &token[5..],
        ] {
            assert_eq!(host_token_digest(not_a_token), None, "{not_a_token}");
        }
    }
}
