use std::time::Duration;

use auth::{NewToken, SigningKey, VerifierConfig};
use serde_json::{Map, Value, json};

use crate::JwksServer;

pub const TEST_AUDIENCE: &str = "https://api.fractal.co";
pub const TEST_ISSUER: &str = "https://auth.test.fractal.co/";

/// The test's own identity provider: a key, its JWKS on a local server, and tokens.
pub struct TestIdentity {
    pub key: SigningKey,
    pub jwks: JwksServer,
}

impl TestIdentity {
    pub fn new() -> Self {
        let key = SigningKey::generate().expect("generate an RSA key");
        let jwks = JwksServer::start(json!({ "keys": [key.jwk()] }));
        Self { key, jwks }
    }

    /// A verifier configuration that trusts this identity's JWKS.
    pub fn verifier_config(&self) -> VerifierConfig {
        let mut config = VerifierConfig::new(TEST_AUDIENCE);
        config.jwks_url = Some(self.jwks.url().parse().expect("JWKS URL"));
        config.issuer = Some(TEST_ISSUER.to_owned());
        config
    }

    /// The claims of a valid token for `user`, to alter before signing.
    pub fn claims(&self, user: &str) -> Map<String, Value> {
        NewToken {
            subject: user.to_owned(),
            audience: TEST_AUDIENCE.to_owned(),
            issuer: Some(TEST_ISSUER.to_owned()),
            lifetime: Duration::from_secs(3600),
            scopes: Vec::new(),
            extra: Map::new(),
        }
        .claims()
    }

    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        self.key.sign(claims).expect("sign a token")
    }

    /// A token with any header and signature, for attacks the verifier must refuse.
    pub fn forge(header: &Value, claims: &Map<String, Value>, signature: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            b64.encode(header.to_string()),
            b64.encode(Value::Object(claims.clone()).to_string()),
            b64.encode(signature)
        )
    }

    /// An HS256 token keyed with this identity's public JWK and naming its key id:
    /// the algorithm-confusion attack the verifier must refuse.
    pub fn hs256_keyed_with_public_key(&self, user: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(self.key.kid().to_owned());
        let secret = serde_json::to_vec(&self.key.jwk()).expect("serialise the JWK");
        let key = jsonwebtoken::EncodingKey::from_secret(&secret).expect("an HMAC key");
        jsonwebtoken::encode(&header, &self.claims(user), &key).expect("sign")
    }

    /// A valid token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.sign(&self.claims(user))
    }

    /// A valid token for `user` with the admin scope.
    pub fn admin_token(&self, user: &str) -> String {
        let mut claims = self.claims(user);
        claims.insert("scope".to_owned(), Value::from("openid admin"));
        self.sign(&claims)
    }
}

impl Default for TestIdentity {
    fn default() -> Self {
        Self::new()
    }
}

/// Now, in whole seconds since the Unix epoch (the unit of JWT time claims).
pub fn unix_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
