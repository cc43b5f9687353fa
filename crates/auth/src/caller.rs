use std::collections::BTreeSet;

use domain::UserId;
use serde_json::{Map, Value};

use crate::AuthError;

/// The scope that marks developers and internal tools.
pub const ADMIN_SCOPE: &str = "admin";

/// The verified subject of a user token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub scopes: BTreeSet<String>,
    /// The Stripe customer named by the token's customer-id claim, if any.
    pub stripe_customer_id: Option<String>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    pub fn is_admin(&self) -> bool {
        self.has_scope(ADMIN_SCOPE)
    }

    /// Reads a caller from verified claims: `sub`, the space-separated `scope` claim
    /// (and Auth0's `permissions` array), and the Stripe customer claim.
    pub(crate) fn from_claims(
        claims: &Map<String, Value>,
        stripe_claim: &str,
    ) -> Result<Self, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid("token has no subject".to_owned()))?;
        let user_id = UserId::parse(subject)
            .map_err(|_| AuthError::Invalid("token subject is not a user id".to_owned()))?;

        let mut scopes = BTreeSet::new();
        if let Some(scope) = claims.get("scope").and_then(Value::as_str) {
            scopes.extend(scope.split_whitespace().map(str::to_owned));
        }
        if let Some(permissions) = claims.get("permissions").and_then(Value::as_array) {
            scopes.extend(
                permissions
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
        }

        let stripe_customer_id = claims
            .get(stripe_claim)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);

        Ok(Self {
            user_id,
            scopes,
            stripe_customer_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CLAIM: &str = "https://api.fractal.co/stripe_customer_id";

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn scopes_come_from_scope_string_and_permissions() {
        let caller = Caller::from_claims(
            &claims(json!({"sub": "u", "scope": "openid admin", "permissions": ["read:x"]})),
            CLAIM,
        )
        .unwrap();
        assert!(caller.is_admin());
        assert!(caller.has_scope("openid"));
        assert!(caller.has_scope("read:x"));
    }

    #[test]
    fn stripe_customer_comes_from_the_configured_claim() {
        let caller =
            Caller::from_claims(&claims(json!({"sub": "u", CLAIM: "cus_123"})), CLAIM).unwrap();
        assert_eq!(caller.stripe_customer_id.as_deref(), Some("cus_123"));
        assert!(!caller.is_admin());
        let other = Caller::from_claims(&claims(json!({"sub": "u", CLAIM: "cus_1"})), "x").unwrap();
        assert_eq!(other.stripe_customer_id, None);
    }

    #[test]
    fn a_token_without_subject_is_invalid() {
        assert!(Caller::from_claims(&claims(json!({"scope": "admin"})), CLAIM).is_err());
        assert!(Caller::from_claims(&claims(json!({"sub": ""})), CLAIM).is_err());
        assert!(Caller::from_claims(&claims(json!({"sub": 7})), CLAIM).is_err());
    }
}
