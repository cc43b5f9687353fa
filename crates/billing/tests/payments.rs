//! The payment gate against a local stand-in for Stripe's API.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use billing::{CachedSubscriptions, PaymentError, StripeClient, Subscriptions};
use futures_util::future::join_all;
use test_support::{STRIPE_TEST_SECRET, StripeStub};

fn client(stub: &StripeStub) -> StripeClient {
    StripeClient::new(
        stub.base_url().parse().unwrap(),
        STRIPE_TEST_SECRET.to_owned().into(),
    )
    .unwrap()
}

#[tokio::test]
async fn active_or_trialing_subscriptions_pay_others_do_not() {
    let stub = StripeStub::start();
    stub.set_customer("cus_active", &["canceled", "active"]);
    stub.set_customer("cus_trial", &["trialing"]);
    stub.set_customer("cus_lapsed", &["canceled", "past_due", "unpaid"]);
    stub.set_customer("cus_none", &[]);
    let stripe = client(&stub);
    assert!(stripe.is_paying("cus_active").await.unwrap());
    assert!(stripe.is_paying("cus_trial").await.unwrap());
    assert!(!stripe.is_paying("cus_lapsed").await.unwrap());
    assert!(!stripe.is_paying("cus_none").await.unwrap());
    assert!(!stripe.is_paying("cus_unknown").await.unwrap());
}

#[tokio::test]
async fn stripe_down_or_refusing_our_key_is_an_error_not_a_yes() {
    let stub = StripeStub::start();
    stub.set_customer("cus_active", &["active"]);
    stub.set_down(true);
    assert!(matches!(
        client(&stub).is_paying("cus_active").await,
        Err(PaymentError::Unavailable(_))
    ));
    stub.set_down(false);

    let wrong_key = StripeClient::new(
        stub.base_url().parse().unwrap(),
        "sk_wrong".to_owned().into(),
    )
    .unwrap();
    assert!(matches!(
        wrong_key.is_paying("cus_active").await,
        Err(PaymentError::Unavailable(_))
    ));

    let nowhere = StripeClient::new(
        "http://127.0.0.1:1".parse().unwrap(),
        "sk".to_owned().into(),
    )
    .unwrap();
    assert!(matches!(
        nowhere.is_paying("cus_active").await,
        Err(PaymentError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_burst_for_one_customer_is_one_stripe_call() {
    let stub = StripeStub::start();
    stub.set_customer("cus_1", &["active"]);
    stub.set_customer("cus_2", &["canceled"]);
    let cached = CachedSubscriptions::new(client(&stub), Duration::from_secs(60));
    let burst = (0..20).map(|i| cached.is_paying(if i % 2 == 0 { "cus_1" } else { "cus_2" }));
    let answers = join_all(burst).await;
    assert_eq!(answers.iter().filter(|a| matches!(a, Ok(true))).count(), 10);
    assert_eq!(
        answers.iter().filter(|a| matches!(a, Ok(false))).count(),
        10
    );
    assert_eq!(stub.hits(), 2, "one call per customer");
}

#[tokio::test]
async fn answers_expire_and_errors_are_not_cached() {
    let stub = StripeStub::start();
    stub.set_customer("cus_1", &["active"]);
    let cached = CachedSubscriptions::new(client(&stub), Duration::from_millis(200));
    assert!(cached.is_paying("cus_1").await.unwrap());
    stub.set_customer("cus_1", &["canceled"]);
    assert!(cached.is_paying("cus_1").await.unwrap(), "cached");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!cached.is_paying("cus_1").await.unwrap(), "expired");

    stub.set_down(true);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(cached.is_paying("cus_1").await.is_err());
    stub.set_down(false);
    let before = stub.hits();
    assert!(!cached.is_paying("cus_1").await.unwrap());
    assert_eq!(stub.hits(), before + 1, "the error was not cached");
}
