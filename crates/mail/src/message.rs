//! A mail to send, with checked addresses.

use std::fmt;

/// An e-mail address: `local@domain`, without spaces, angle brackets or line breaks,
/// at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Address(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid e-mail address {0:?}")]
pub struct InvalidAddress(pub String);

impl TryFrom<String> for Address {
    type Error = InvalidAddress;

    fn try_from(value: String) -> Result<Self, InvalidAddress> {
        Self::parse(&value)
    }
}

impl Address {
    pub fn parse(value: &str) -> Result<Self, InvalidAddress> {
        let invalid = || InvalidAddress(value.to_owned());
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let clean = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\\\"".contains(c))
        };
        let domain_ok = clean(domain)
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if value.len() > 254 || !clean(local) || local.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: Address,
    pub to: Address,
    pub subject: String,
    /// The HTML body.
    pub html: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        for good in ["a@b.co", "first.last+tag@mail.example.com", "x@localhost"] {
            assert!(Address::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "no-at-sign",
            "@b.co",
            "a@",
            "a b@c.co",
            "a@b@c.co",
            "a@b..co",
            "<a@b.co>",
            "a@b.co\r\nBcc: victim@x.co",
            "a@.co",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?}");
        }
    }
}
