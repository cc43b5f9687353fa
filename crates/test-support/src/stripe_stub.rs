use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::StubServer;

pub const STRIPE_TEST_SECRET: &str = "sk_test_stub";

/// Stripe's subscription and billing-portal APIs, standing in: customers with the
/// statuses of their subscriptions; a portal session for a known customer answers
/// `https://billing.stripe.com/p/session/test_<customer>`. Unknown customers get Stripe's
/// 404 (400 for a portal session); requests without the test secret
/// get 401; `set_down(true)` answers 500.
#[derive(Clone)]
pub struct StripeStub {
    server: StubServer,
    customers: Arc<Mutex<HashMap<String, Vec<String>>>>,
    down: Arc<AtomicBool>,
}

impl StripeStub {
    pub fn start() -> Self {
        let customers: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let (known, is_down) = (customers.clone(), down.clone());
        let server = StubServer::start(move |request| {
            if is_down.load(Ordering::SeqCst) {
                return (500, json!({"error": {"message": "stub outage"}}));
            }
            let authorized = request.headers.get("authorization").map(String::as_str)
                == Some(&format!("Bearer {STRIPE_TEST_SECRET}"));
            if !authorized {
                return (401, json!({"error": {"message": "Invalid API Key"}}));
            }
            if request.method == "POST" && request.path == "/v1/billing_portal/sessions" {
                let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
                    .into_owned()
                    .collect();
                let customer = form.get("customer").cloned().unwrap_or_default();
                if !known.lock().unwrap().contains_key(&customer) {
                    return (
                        400,
                        json!({"error": {"message": format!("No such customer: '{customer}'")}}),
                    );
                }
                let Some(return_url) = form.get("return_url") else {
                    return (400, json!({"error": {"message": "Missing return_url"}}));
                };
                return (
                    200,
                    json!({
                        "object": "billing_portal.session",
                        "customer": customer,
                        "return_url": return_url,
                        "url": format!("https://billing.stripe.com/p/session/test_{customer}"),
                    }),
                );
            }
            if request.method != "GET" || request.path != "/v1/subscriptions" {
                return (
                    404,
                    json!({"error": {"message": "Unrecognized request URL"}}),
                );
            }
            let customer = request.query.get("customer").cloned().unwrap_or_default();
            match known.lock().unwrap().get(&customer) {
                None => (
                    404,
                    json!({"error": {"message": format!("No such customer: '{customer}'")}}),
                ),
                Some(statuses) => {
                    let data: Vec<_> = statuses
                        .iter()
                        .map(|status| json!({"object": "subscription", "status": status}))
                        .collect();
                    (
                        200,
                        json!({"object": "list", "data": data, "has_more": false}),
                    )
                }
            }
        });
        Self {
            server,
            customers,
            down,
        }
    }

    /// Gives `customer` subscriptions in these statuses (`active`, `trialing`,
    /// `canceled`, `past_due`, …).
    pub fn set_customer(&self, customer: &str, statuses: &[&str]) {
        self.customers.lock().unwrap().insert(
            customer.to_owned(),
            statuses.iter().map(|s| (*s).to_owned()).collect(),
        );
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The value for `STRIPE_API_BASE`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    pub fn hits(&self) -> usize {
        self.server.hits()
    }
}
