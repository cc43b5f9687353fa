//! Keeping secrets out of logs: any field or parameter whose name says password,
//! secret, token or key is logged as `[REDACTED]`.

pub const REDACTED: &str = "[REDACTED]";

/// Whether a field or parameter of this name may hold a secret.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key", "authorization"]
        .iter()
        .any(|word| name.contains(word))
}

/// A query string with the values of sensitive parameters replaced.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_sensitive(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_names_are_recognised() {
        for name in [
            "password",
            "bootstrap_secret",
            "access_token",
            "API_KEY",
            "Authorization",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["region", "username", "dpi", "message"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn sensitive_query_values_are_replaced() {
        assert_eq!(
            redact_query("region=us-east-1&access_token=eyJ.abc.def&x"),
            "region=us-east-1&access_token=[REDACTED]&x"
        );
        assert_eq!(redact_query(""), "");
    }
}
