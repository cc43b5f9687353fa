//! `POST /stripe/customer_portal`: the request, checked.

use serde_json::Value;
use url::Url;

use crate::request::{InvalidRequest, invalid, object, string};

/// Where Stripe's customer portal sends the customer back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRequest {
    pub return_url: Url,
}

impl TryFrom<&Value> for PortalRequest {
    type Error = InvalidRequest;

    fn try_from(body: &Value) -> Result<Self, InvalidRequest> {
        let body = object(body)?;
        let text = string(body, "return_url")?;
        let return_url =
            Url::parse(text).map_err(|err| invalid("return_url", format!("not a URL: {err}")))?;
        if !matches!(return_url.scheme(), "http" | "https") || return_url.host().is_none() {
            return Err(invalid("return_url", "expected an http or https URL"));
        }
        Ok(Self { return_url })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_return_url_is_required_and_must_be_http() {
        let good = PortalRequest::try_from(&json!({"return_url": "https://fractal.co/account"}));
        assert_eq!(
            good.unwrap().return_url.as_str(),
            "https://fractal.co/account"
        );
        for bad in [
            json!({}),
            json!({"return_url": 7}),
            json!({"return_url": "not a url"}),
            json!({"return_url": "javascript:alert(1)"}),
            json!({"return_url": "file:///etc/passwd"}),
            json!("https://fractal.co"),
        ] {
            let err = PortalRequest::try_from(&bad).unwrap_err();
            assert!(
                err.to_string().contains("return_url") || err.to_string().contains("object"),
                "{bad}: {err}"
            );
        }
    }
}
