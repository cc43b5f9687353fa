//! Who is calling: user tokens (RS256 JWTs checked against a JWKS, or against the
//! local development key), their scopes and their Stripe customer.
//!
//! Nothing here knows about HTTP; the `api` crate turns a [`Caller`] into extractors.

mod caller;
pub mod host;
mod jwks;
mod keys;
pub mod payments;
mod verifier;

pub use caller::{ADMIN_SCOPE, Caller};
pub use keys::{KeyError, NewToken, SigningKey, load_or_create_dev_key};
pub use verifier::{AuthError, TokenVerifier, VerifierConfig};
