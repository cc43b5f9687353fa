//! Request bodies: read as JSON (415, 413 and syntax errors answered by the shared JSON
//! configuration), then deserialized into the route's body type, whose fields are the
//! validating types. A refusal names the field: `dpi: expected a whole number from 1 to
//! 2000, not string "96"`.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON body of type `T`, or a 400 naming the field at fault.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            parse(value)
                .map(Self)
                .map_err(|problem| ApiError::BadRequest(problem).into())
        })
    }
}

/// `value` as a `T`, or what is wrong with it, naming the field. The body must be a JSON
/// object (serde would read a struct from an array too).
pub fn parse<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    let kind = match &value {
        Value::Object(_) => None,
        Value::Array(_) => Some("an array"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(format!("body: expected a JSON object, not {kind}"));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        describe(&path, &err.into_inner().to_string())
    })
}

/// serde's message about the value at `path`, in the words of the API: `field: what was
/// expected, not what came`. `path` is `.` for the body itself.
fn describe(path: &str, message: &str) -> String {
    let field = |name: &str| match path {
        "." => name.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    // A list's items are named by the list: `regions`, not `regions[0]`.
    let at = match path {
        "." => "body",
        path => path.split('[').next().unwrap_or(path),
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return format!("{}: required", field(name));
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = mismatch.and_then(|rest| rest.split_once(", expected ")) {
        return format!(
            "{at}: expected {}, not {}",
            json_words(expected),
            json_words(found)
        );
    }
    if path == "." {
        // A type's own check of the whole body, which names its field itself.
        message.to_owned()
    } else {
        format!("{at}: {message}")
    }
}

/// serde's names of JSON shapes, as a JSON user says them.
fn json_words(serde: &str) -> String {
    match serde {
        "sequence" => "an array".to_owned(),
        "map" | "a map" => "an object".to_owned(),
        "unit value" => "null".to_owned(),
        other if other.starts_with("struct ") => "a JSON object".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field_in_the_apis_words() {
        assert_eq!(
            describe(".", "missing field `return_url`"),
            "return_url: required"
        );
        assert_eq!(
            describe(
                "dpi",
                "invalid type: string \"96\", expected a whole number from 1 to 2000"
            ),
            "dpi: expected a whole number from 1 to 2000, not string \"96\""
        );
        assert_eq!(
            describe(".", "invalid type: sequence, expected struct PortalRequest"),
            "body: expected a JSON object, not an array"
        );
        assert_eq!(
            describe("email_args", "invalid type: sequence, expected a map"),
            "email_args: expected an object, not an array"
        );
        assert_eq!(
            describe("to_email", "invalid e-mail address \"x\""),
            "to_email: invalid e-mail address \"x\""
        );
        assert_eq!(describe(".", "region: required"), "region: required");
        assert_eq!(
            describe(
                "regions[0]",
                "invalid region \"X\": expected a name such as \"us-east-1\""
            ),
            "regions: invalid region \"X\": expected a name such as \"us-east-1\""
        );
    }
}
