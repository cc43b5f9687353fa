//! RS256 signing keys: the local development key and the keys tests mint.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, Jwk, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
    RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Map, Value};

/// The development key's file under the local data directory.
const DEV_KEY_FILE: &str = "dev-signing-key.pk8";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key")]
    Generate,
    #[error("not an RSA private key in PKCS#8 DER form")]
    Format,
    #[error("signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// An RSA key that signs RS256 tokens, named by a key id derived from its public part.
pub struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.as_der().map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| KeyError::Format)?;
        let public = pair.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let exponent = public.exponent().big_endian_without_leading_zero().to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &modulus);
        let kid = crate::hex(&digest.as_ref()[..12]);
        // jsonwebtoken signs from the PKCS#1 RSAPrivateKey that PKCS#8 wraps.
        let pkcs1 = pkcs1_from_pkcs8(der).ok_or(KeyError::Format)?;
        Ok(Self {
            kid,
            pkcs8: der.to_vec(),
            encoding: EncodingKey::from_rsa_der(pkcs1),
            modulus,
            exponent,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWKS entry (`kty` RSA, `alg` RS256, `use` sig, `kid`).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            common: CommonParameters {
                key_id: Some(self.kid.clone()),
                key_algorithm: Some(KeyAlgorithm::RS256),
                public_key_use: Some(PublicKeyUse::Signature),
                ..Default::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: base64url(&self.modulus),
                e: base64url(&self.exponent),
            }),
        }
    }

    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_rsa_raw_components(&self.modulus, &self.exponent)
    }

    /// Signs `claims` as an RS256 JWT whose header names this key.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(KeyError::Sign)
    }

    /// Mints a token for `token.subject`.
    pub fn mint(&self, token: &NewToken) -> Result<String, KeyError> {
        self.sign(&token.claims())
    }
}

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub subject: String,
    pub audience: String,
    pub issuer: Option<String>,
    pub lifetime: Duration,
    pub scopes: Vec<String>,
    /// More claims, e.g. the Stripe customer id.
    pub extra: Map<String, Value>,
}

impl NewToken {
    pub fn claims(&self) -> Map<String, Value> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = self.extra.clone();
        claims.insert("sub".to_owned(), Value::from(self.subject.clone()));
        claims.insert("aud".to_owned(), Value::from(self.audience.clone()));
        claims.insert("iat".to_owned(), Value::from(now));
        claims.insert(
            "exp".to_owned(),
            Value::from(now.saturating_add(self.lifetime.as_secs())),
        );
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".to_owned(), Value::from(issuer.clone()));
        }
        if !self.scopes.is_empty() {
            claims.insert("scope".to_owned(), Value::from(self.scopes.join(" ")));
        }
        claims
    }
}

/// The development key under `dir`, created (readable by its owner only) when absent.
/// Two processes starting at once end up with the same key: a new key is published
/// with a hard link, which fails when another process published first.
pub fn load_or_create_dev_key(dir: &Path) -> Result<SigningKey, KeyError> {
    let path = dir.join(DEV_KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match fs::read(&path) {
        Ok(der) => return SigningKey::from_pkcs8(&der),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io(err)),
    }
    fs::create_dir_all(dir).map_err(io)?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = SigningKey::generate()?;
    let staging = dir.join(format!("{DEV_KEY_FILE}.{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&staging)
        .map_err(io)?;
    file.write_all(key.pkcs8_der()).map_err(io)?;
    file.sync_all().map_err(io)?;
    let published = fs::hard_link(&staging, &path);
    let _ = fs::remove_file(&staging);
    match published {
        Ok(()) => Ok(key),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            SigningKey::from_pkcs8(&fs::read(&path).map_err(io)?)
        }
        Err(err) => Err(io(err)),
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`:
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, … }`.
fn pkcs1_from_pkcs8(der: &[u8]) -> Option<&[u8]> {
    let (body, _) = der_element(der, 0x30)?;
    let (_, rest) = der_element(body, 0x02)?;
    let (_, rest) = der_element(rest, 0x30)?;
    let (key, _) = der_element(rest, 0x04)?;
    Some(key)
}

/// Splits one DER element with `tag` off the front of `input`: (contents, rest).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, rest) = rest.split_first()?;
    let (len, rest) = if len_byte < 0x80 {
        (usize::from(len_byte), rest)
    } else {
        let count = usize::from(len_byte & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(count);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_tokens_its_decoding_key_verifies() {
        let key = SigningKey::generate().unwrap();
        let token = key
            .mint(&NewToken {
                subject: "user-1".to_owned(),
                audience: "aud".to_owned(),
                issuer: None,
                lifetime: Duration::from_secs(60),
                scopes: vec!["admin".to_owned()],
                extra: Map::new(),
            })
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["aud"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(&token, &key.decoding_key(), &validation)
                .unwrap();
        assert_eq!(data.claims["sub"], "user-1");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
        // The JWK carries the same public key.
        let from_jwk = DecodingKey::from_jwk(&key.jwk()).unwrap();
        assert!(jsonwebtoken::decode::<Map<String, Value>>(&token, &from_jwk, &validation).is_ok());
    }

    #[test]
    fn dev_key_is_created_once_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("auth-dev-key-{}", uuid_like()));
        let first = load_or_create_dev_key(&dir).unwrap();
        let second = load_or_create_dev_key(&dir).unwrap();
        assert_eq!(first.kid(), second.kid());
        let mode = fs::metadata(dir.join(DEV_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn uuid_like() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    }
}
