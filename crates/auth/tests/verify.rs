//! Token verification against a JWKS served locally, as the identity provider would.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use auth::{AuthError, SigningKey, TokenVerifier};
use futures_util::future::join_all;
use serde_json::json;
use test_support::{TestIdentity, unix_now_secs};

#[tokio::test]
async fn valid_token_yields_its_subject_scopes_and_customer() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let mut claims = identity.claims("auth0|alice");
    claims.insert("scope".into(), json!("openid admin"));
    claims.insert(
        "https://api.fractal.co/stripe_customer_id".into(),
        json!("cus_42"),
    );
    let caller = verifier.verify(&identity.sign(&claims)).await.unwrap();
    assert_eq!(caller.user_id.as_str(), "auth0|alice");
    assert!(caller.is_admin());
    assert_eq!(caller.stripe_customer_id.as_deref(), Some("cus_42"));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let header = json!({"alg": "none", "typ": "JWT", "kid": identity.key.kid()});
    let token = TestIdentity::forge(&header, &identity.claims("mallory"), b"");
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Malformed));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    // The classic confusion attack: HMAC keyed with the (public) RSA key material.
    let token = identity.hs256_keyed_with_public_key("mallory");
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Algorithm(_))
    ));
}

#[tokio::test]
async fn token_from_an_unknown_key_is_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let stranger = SigningKey::generate().unwrap();
    let token = stranger.sign(&identity.claims("mallory")).unwrap();
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn token_with_a_known_kid_but_foreign_signature_is_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let stranger = SigningKey::generate().unwrap();
    let honest = identity.token("alice");
    let forged = stranger.sign(&identity.claims("mallory")).unwrap();
    // Keep our header (our kid) but put the stranger's payload and signature after it.
    let header = honest.split('.').next().unwrap();
    let rest: Vec<&str> = forged.split('.').skip(1).collect();
    let token = format!("{header}.{}.{}", rest[0], rest[1]);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::Signature));
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();

    let mut expired = identity.claims("alice");
    expired.insert("exp".into(), json!(unix_now_secs() - 120));
    assert_eq!(
        verifier.verify(&identity.sign(&expired)).await,
        Err(AuthError::Expired)
    );

    let mut early = identity.claims("alice");
    early.insert("nbf".into(), json!(unix_now_secs() + 120));
    assert_eq!(
        verifier.verify(&identity.sign(&early)).await,
        Err(AuthError::NotYetValid)
    );

    // Within the 30 s leeway both pass: clocks are allowed to disagree a little.
    let mut skewed = identity.claims("alice");
    skewed.insert("exp".into(), json!(unix_now_secs() - 5));
    skewed.insert("nbf".into(), json!(unix_now_secs() + 5));
    assert!(verifier.verify(&identity.sign(&skewed)).await.is_ok());
}

#[tokio::test]
async fn wrong_or_missing_audience_and_issuer_are_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();

    let mut claims = identity.claims("alice");
    claims.insert("aud".into(), json!("https://someone-else.example"));
    assert_eq!(
        verifier.verify(&identity.sign(&claims)).await,
        Err(AuthError::Audience)
    );

    let mut claims = identity.claims("alice");
    claims.remove("aud");
    assert!(matches!(
        verifier.verify(&identity.sign(&claims)).await,
        Err(AuthError::Invalid(_))
    ));

    let mut claims = identity.claims("alice");
    claims.insert("iss".into(), json!("https://evil.example/"));
    assert_eq!(
        verifier.verify(&identity.sign(&claims)).await,
        Err(AuthError::Issuer)
    );

    let mut claims = identity.claims("alice");
    claims.remove("iss");
    assert!(matches!(
        verifier.verify(&identity.sign(&claims)).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn garbage_is_refused() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    for token in ["", "abc", "a.b.c", "....", &"x".repeat(20_000)] {
        assert!(verifier.verify(token).await.is_err(), "{token:.20}");
    }
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_dropped_keys_stop_working() {
    let identity = TestIdentity::new();
    let mut config = identity.verifier_config();
    config.jwks_min_refresh = Duration::ZERO;
    let verifier = TokenVerifier::new(&config).unwrap();
    let old_token = identity.token("alice");
    assert!(verifier.verify(&old_token).await.is_ok());

    // The provider rotates: a new key appears, the old one is withdrawn.
    let new_key = SigningKey::generate().unwrap();
    identity.jwks.set_keys(json!({"keys": [new_key.jwk()]}));
    let new_token = new_key.sign(&identity.claims("alice")).unwrap();
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_eq!(
        verifier.verify(&old_token).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn unknown_key_ids_refetch_at_most_once_per_floor() {
    let identity = TestIdentity::new();
    let mut config = identity.verifier_config();
    config.jwks_min_refresh = Duration::from_secs(3600);
    let verifier = TokenVerifier::new(&config).unwrap();
    assert!(verifier.verify(&identity.token("alice")).await.is_ok());
    let after_first = identity.jwks.hits();
    assert_eq!(after_first, 1);

    let stranger = SigningKey::generate().unwrap();
    let token = stranger.sign(&identity.claims("mallory")).unwrap();
    let attempts = (0..50).map(|_| verifier.verify(&token));
    for result in join_all(attempts).await {
        assert_eq!(result, Err(AuthError::UnknownKey));
    }
    // Within the floor, fifty unknown kids cause no more fetches.
    assert_eq!(identity.jwks.hits(), after_first);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let token = identity.token("alice");
    let results = join_all((0..20).map(|_| verifier.verify(&token))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(identity.jwks.hits(), 1);
}

#[tokio::test]
async fn provider_outage_is_reported_as_unavailable_not_as_a_bad_token() {
    let identity = TestIdentity::new();
    identity.jwks.set_status(500);
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    assert!(matches!(
        verifier.verify(&identity.token("alice")).await,
        Err(AuthError::KeysUnavailable)
    ));
}

#[tokio::test]
async fn cached_keys_keep_working_through_a_provider_outage() {
    let identity = TestIdentity::new();
    let mut config = identity.verifier_config();
    config.jwks_min_refresh = Duration::ZERO;
    config.jwks_max_age = Duration::ZERO; // every lookup wants a refetch
    let verifier = TokenVerifier::new(&config).unwrap();
    assert!(verifier.verify(&identity.token("alice")).await.is_ok());
    identity.jwks.set_status(503);
    assert!(verifier.verify(&identity.token("alice")).await.is_ok());
}

#[tokio::test]
async fn directly_trusted_key_needs_no_jwks() {
    let dev_key = SigningKey::generate().unwrap();
    let config = auth::VerifierConfig::new(test_support::TEST_AUDIENCE);
    let verifier = TokenVerifier::new(&config).unwrap().trust_key(&dev_key);
    let identity = TestIdentity::new();
    let mut claims = identity.claims("dev");
    claims.remove("iss");
    let token = dev_key.sign(&claims).unwrap();
    assert_eq!(
        verifier.verify(&token).await.unwrap().user_id.as_str(),
        "dev"
    );
    // A JWKS-less verifier knows no other key.
    assert_eq!(
        verifier.verify(&identity.token("x")).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn requests_during_the_startup_prefetch_wait_for_it() {
    let identity = TestIdentity::new();
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let token = identity.token("alice");
    let prefetch = verifier.prefetch();
    let requests = join_all((0..5).map(|_| verifier.verify(&token)));
    let (fetched, results) = tokio::join!(prefetch, requests);
    assert_eq!(fetched.unwrap(), 1);
    for result in results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(identity.jwks.hits(), 1);
}

#[tokio::test]
async fn tokens_verify_within_moments_of_the_providers_return() {
    // The server started while the provider did not answer.
    let identity = TestIdentity::new();
    identity.jwks.set_status(503);
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let token = identity.token("alice");
    for _ in 0..5 {
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::KeysUnavailable)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The refetch floor (an hour by default) does not hold back the retry of a failed
    // fetch: once the provider answers, tokens verify after a short backoff.
    identity.jwks.set_status(200);
    let back = std::time::Instant::now();
    while verifier.verify(&token).await.is_err() {
        assert!(
            back.elapsed() < Duration::from_secs(6),
            "still unavailable {:?} after the provider's return",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_within_the_backoff_do_not_each_fetch() {
    let identity = TestIdentity::new();
    identity.jwks.set_status(503);
    let verifier = TokenVerifier::new(&identity.verifier_config()).unwrap();
    let token = identity.token("alice");
    let results = join_all((0..50).map(|_| verifier.verify(&token))).await;
    assert!(
        results
            .iter()
            .all(|r| *r == Err(AuthError::KeysUnavailable))
    );
    assert_eq!(identity.jwks.hits(), 1, "one fetch, then the backoff");
}

#[tokio::test]
async fn cached_keys_are_refreshed_in_the_background() {
    let identity = TestIdentity::new();
    let mut config = identity.verifier_config();
    config.jwks_min_refresh = Duration::from_secs(3600);
    config.jwks_refresh_every = Duration::from_millis(100);
    let verifier = std::sync::Arc::new(TokenVerifier::new(&config).unwrap());
    assert!(verifier.verify(&identity.token("alice")).await.is_ok());
    let refresher = {
        let verifier = verifier.clone();
        tokio::spawn(async move { verifier.refresh_keys_periodically().await })
    };
    // The provider rotates; no request asks for the new key before the refresh.
    let new_key = SigningKey::generate().unwrap();
    identity
        .jwks
        .set_keys(json!({"keys": [new_key.jwk(), identity.key.jwk()]}));
    // A request for the unknown key cannot fetch it itself: the hour's floor holds.
    let new_token = new_key.sign(&identity.claims("alice")).unwrap();
    assert_eq!(
        verifier.verify(&new_token).await,
        Err(AuthError::UnknownKey)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while verifier.verify(&new_token).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(identity.jwks.hits() >= 2);
    refresher.abort();
}
