//! The body of `POST /stripe/customer_portal`.

use serde::Deserialize;
use url::Url;

/// `{return_url}`: where Stripe's customer portal sends the customer back to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub struct PortalRequest {
    /// Where the portal sends the customer back to (http or https).
    #[schema(
        value_type = String,
        format = "uri",
        pattern = "^https?://",
        example = "https://fractal.co/account"
    )]
    pub return_url: ReturnUrl,
}

/// An http or https URL with a host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ReturnUrl(Url);

/// Why a return URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidReturnUrl {
    #[error("not a URL")]
    NotAUrl(#[source] url::ParseError),
    #[error("expected an http or https URL")]
    NotHttp,
}

impl TryFrom<String> for ReturnUrl {
    type Error = InvalidReturnUrl;

    fn try_from(text: String) -> Result<Self, InvalidReturnUrl> {
        let url = Url::parse(&text).map_err(InvalidReturnUrl::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(InvalidReturnUrl::NotHttp);
        }
        Ok(Self(url))
    }
}

impl ReturnUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_return_url_is_required_and_must_be_http() {
        let good: PortalRequest =
            serde_json::from_value(json!({"return_url": "https://fractal.co/account"})).unwrap();
        assert_eq!(good.return_url.url().as_str(), "https://fractal.co/account");
        for bad in [
            json!({}),
            json!({"return_url": 7}),
            json!({"return_url": "not a url"}),
            json!({"return_url": "javascript:alert(1)"}),
            json!({"return_url": "file:///etc/passwd"}),
            json!("https://fractal.co"),
        ] {
            assert!(
                serde_json::from_value::<PortalRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
