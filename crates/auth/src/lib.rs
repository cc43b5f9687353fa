//! Who is calling: user tokens (RS256 JWTs checked against a JWKS, or against the
//! local development key), their scopes and their Stripe customer.
//!
//! Nothing here knows about HTTP; the `api` crate turns a [`Caller`] into extractors.

mod caller;
pub mod host;
mod jwks;
mod keys;
mod verifier;

/// Lowercase hexadecimal, for key ids and token digests.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

pub use caller::{ADMIN_SCOPE, AdminClaim, Caller};
pub use jwks::JwksError;
pub use keys::{KeyError, NewToken, SigningKey, load_or_create_dev_key};
pub use verifier::{AuthError, TokenVerifier, VerifierConfig};
