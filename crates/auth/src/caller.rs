use std::collections::BTreeSet;
use std::fmt;

use domain::UserId;
use serde_json::{Map, Value};

use crate::AuthError;

/// The scope (or permission) that marks developers and internal tools.
pub const ADMIN_SCOPE: &str = "admin";

/// Which claim of a verified token may make its caller an admin (`ADMIN_CLAIM`).
///
/// Admin opens `/fleet`, drains, `/mail`, assigning for another user and skipping the
/// payment gate, so the choice decides who the identity provider lets in:
///
/// - [`AdminClaim::Scope`] (the default, the original's contract): `admin` in the
///   space-separated `scope` claim. Safe only when the provider grants a scope only to
///   users allowed it (Auth0 with RBAC enforced); a tenant that grants whatever scopes a
///   login asks for would let any user ask for `scope=openid admin`.
/// - [`AdminClaim::Permissions`]: `admin` in Auth0's `permissions` array, which the
///   provider fills from the roles an operator assigned, never from the login request.
///
/// The other claim is read (see [`Caller::scopes`], [`Caller::permissions`]) but never
/// grants admin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AdminClaim {
    #[default]
    Scope,
    Permissions,
}

impl AdminClaim {
    /// Reads `scope` or `permissions`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "scope" => Some(Self::Scope),
            "permissions" => Some(Self::Permissions),
            _ => None,
        }
    }

    /// The claim's name in a token.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scope => "scope",
            Self::Permissions => "permissions",
        }
    }
}

impl fmt::Display for AdminClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verified subject of a user token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// The words of the token's space-separated `scope` claim.
    pub scopes: BTreeSet<String>,
    /// The strings of the token's `permissions` array (Auth0's RBAC).
    pub permissions: BTreeSet<String>,
    /// Whether the configured [`AdminClaim`] holds `admin`.
    pub admin: bool,
    /// The Stripe customer named by the token's customer-id claim, if any.
    pub stripe_customer_id: Option<String>,
}

impl Caller {
    /// Whether the token's `scope` claim holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the token's `permissions` claim holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// Whether the caller is an admin, by the claim the verifier was configured with.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Reads a caller from verified claims: `sub`, the space-separated `scope` claim,
    /// Auth0's `permissions` array, and the Stripe customer claim; admin comes from
    /// `admin_claim` alone.
    pub(crate) fn from_claims(
        claims: &Map<String, Value>,
        stripe_claim: &str,
        admin_claim: AdminClaim,
    ) -> Result<Self, AuthError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Invalid("token has no subject".to_owned()))?;
        let user_id = UserId::parse(subject)
            .map_err(|_| AuthError::Invalid("token subject is not a user id".to_owned()))?;

        let scopes: BTreeSet<String> = claims
            .get("scope")
            .and_then(Value::as_str)
            .map(|scope| scope.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let permissions: BTreeSet<String> = claims
            .get("permissions")
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let admin = match admin_claim {
            AdminClaim::Scope => scopes.contains(ADMIN_SCOPE),
            AdminClaim::Permissions => permissions.contains(ADMIN_SCOPE),
        };

        let stripe_customer_id = claims
            .get(stripe_claim)
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);

        Ok(Self {
            user_id,
            scopes,
            permissions,
            admin,
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

    fn caller(value: Value, admin_claim: AdminClaim) -> Caller {
        Caller::from_claims(&claims(value), CLAIM, admin_claim).unwrap()
    }

    #[test]
    fn scopes_and_permissions_are_read_apart() {
        let caller = caller(
            json!({"sub": "u", "scope": "openid admin", "permissions": ["read:x"]}),
            AdminClaim::Scope,
        );
        assert!(caller.is_admin());
        assert!(caller.has_scope("openid"));
        assert!(!caller.has_scope("read:x"));
        assert!(caller.has_permission("read:x"));
        assert!(!caller.has_permission("admin"));
    }

    #[test]
    fn only_the_configured_claim_grants_admin() {
        let in_scope = json!({"sub": "u", "scope": "openid admin"});
        let in_permissions = json!({"sub": "u", "scope": "openid", "permissions": ["admin"]});
        assert!(caller(in_scope.clone(), AdminClaim::Scope).is_admin());
        assert!(!caller(in_permissions.clone(), AdminClaim::Scope).is_admin());
        assert!(!caller(in_scope, AdminClaim::Permissions).is_admin());
        assert!(caller(in_permissions, AdminClaim::Permissions).is_admin());
        // A permission named in the scope string's way does not count either.
        let spaced = json!({"sub": "u", "permissions": ["openid admin"]});
        assert!(!caller(spaced, AdminClaim::Permissions).is_admin());
        // Wrong types grant nothing.
        let odd = json!({"sub": "u", "scope": ["admin"], "permissions": "admin"});
        assert!(!caller(odd.clone(), AdminClaim::Scope).is_admin());
        assert!(!caller(odd, AdminClaim::Permissions).is_admin());
    }

    #[test]
    fn the_admin_claim_parses_its_two_names() {
        assert_eq!(AdminClaim::parse("scope"), Some(AdminClaim::Scope));
        assert_eq!(
            AdminClaim::parse(" permissions "),
            Some(AdminClaim::Permissions)
        );
        assert_eq!(AdminClaim::parse("roles"), None);
        assert_eq!(AdminClaim::parse(""), None);
        assert_eq!(AdminClaim::default(), AdminClaim::Scope);
        assert_eq!(AdminClaim::Permissions.to_string(), "permissions");
    }

    #[test]
    fn stripe_customer_comes_from_the_configured_claim() {
        let caller = caller(json!({"sub": "u", CLAIM: "cus_123"}), AdminClaim::Scope);
        assert_eq!(caller.stripe_customer_id.as_deref(), Some("cus_123"));
        assert!(!caller.is_admin());
        let other = Caller::from_claims(
            &claims(json!({"sub": "u", CLAIM: "cus_1"})),
            "x",
            AdminClaim::Scope,
        )
        .unwrap();
        assert_eq!(other.stripe_customer_id, None);
    }

    #[test]
    fn a_token_without_subject_is_invalid() {
        for value in [
            json!({"scope": "admin"}),
            json!({"sub": ""}),
            json!({"sub": 7}),
        ] {
            assert!(Caller::from_claims(&claims(value), CLAIM, AdminClaim::Scope).is_err());
        }
    }
}
