//! `GET /openapi.json` documents every registered route, and `/docs` shows it without
//! loading anything from elsewhere.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{TestApp, assign_body, json, registration};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn every_registered_route_is_documented_with_its_answers() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc = json(response).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    for (method, path) in api::ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(
            operation.is_object(),
            "{method} {path} is not in the document"
        );
        let responses = operation["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{method} {path} documents no answer");
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        api::ROUTES.len(),
        "the document has routes the server lacks"
    );

    // Security: user routes take the user token, host routes the host token, the
    // register call and the probes none.
    let security = |method: &str, path: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(
        security("post", "/mandelbox/assign")[0]["user_token"],
        serde_json::json!([])
    );
    assert_eq!(
        security("post", "/mail")[0]["user_token"],
        serde_json::json!(["admin"])
    );
    assert_eq!(
        security("post", "/host_service/heartbeat")[0]["host_token"],
        serde_json::json!([])
    );
    assert!(security("post", "/host_service/register").is_null());
    assert!(security("get", "/healthz").is_null());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["user_token"]["scheme"], "bearer");
    assert_eq!(schemes["host_token"]["scheme"], "bearer");

    // Request bodies refer to their schemas, which list the required fields.
    let assign = &doc["paths"]["/mandelbox/assign"]["post"];
    assert_eq!(
        assign["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/AssignBody"
    );
    let body = &doc["components"]["schemas"]["AssignBody"];
    let required: Vec<&str> = body["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["username", "dpi", "client_commit_hash"]);
    for status in ["202", "400", "401", "402", "403", "429", "503"] {
        assert!(
            assign["responses"][status].is_object(),
            "assign lacks {status}"
        );
    }

    // Every documented route answers (never "no such route").
    for (method, path) in api::ROUTES {
        let url = app.url(&path.replace("{id}", "6f1c1a2e-0000-4000-8000-000000000000"));
        let request = match *method {
            "get" => app.client.get(url),
            "post" => app.client.post(url).json(&serde_json::json!({})),
            "put" => app.client.put(url).json(&serde_json::json!({})),
            "delete" => app.client.delete(url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            assert_ne!(
                json(response).await["error"],
                "no such route",
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn docs_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("fetch(\"openapi.json\")"),
        "the page reads the document"
    );
    // Nothing from a CDN: no external scripts, styles or fonts.
    for external in [
        "<script src",
        "<link rel=\"stylesheet\"",
        "https://",
        "http://",
    ] {
        assert!(!page.contains(external), "the page loads {external}");
    }
}

/// Whether `value` is what `schema` (a schema of `doc`, as utoipa writes them) says: types,
/// required fields, enums, arrays, maps, `$ref`, `oneOf`/`anyOf`/`allOf`; an object may
/// carry no field its schema does not name. `Err` says where and why.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: {reference} is not in the document"));
        }
        return conforms(doc, target, value, at);
    }
    for (key, any) in [("oneOf", true), ("anyOf", true), ("allOf", false)] {
        if let Some(options) = schema[key].as_array() {
            let results: Vec<Result<(), String>> = options
                .iter()
                .map(|option| conforms(doc, option, value, at))
                .collect();
            let ok = if any {
                results.iter().any(Result::is_ok)
            } else {
                results.iter().all(Result::is_ok)
            };
            if !ok {
                return Err(format!(
                    "{at}: {value} fits no {key} of {schema}: {results:?}"
                ));
            }
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|kind| match *kind {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => false,
        });
        if !fits {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (n, item) in values.iter().enumerate() {
            conforms(doc, items, item, &format!("{at}[{n}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}: the required field {name} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => conforms(doc, property, field, &at)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(true)) => {}
                    Some(extra @ Value::Object(_)) => conforms(doc, extra, field, &at)?,
                    _ if properties.is_some() => {
                        return Err(format!("{at}: a field the document does not name"));
                    }
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

/// Checks one real answer against what the document says of `method path` and its status.
async fn answers_as_documented(
    doc: &Value,
    method: &str,
    path: &str,
    response: reqwest::Response,
) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = json(response).await;
    let documented = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list: {body}"
    );
    let schema = &documented["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: the document gives no JSON schema"
    );
    if let Err(why) = conforms(doc, schema, &body, "answer") {
        panic!("{method} {path} {status}: {why}; the answer was {body}");
    }
    (status, body)
}

/// The answers the server really gives, on every JSON route and for each kind of
/// outcome reached here, are what the document says they are.
#[tokio::test]
async fn real_answers_are_what_the_document_says() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "0")]).await;
    let doc = json(app.get("/openapi.json").await).await;
    let checked = std::cell::Cell::new(0_usize);
    let check = async |method: &str, path: &str, expected: u16, response| {
        let (status, body) = answers_as_documented(&doc, method, path, response).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        checked.set(checked.get() + 1);
        body
    };
    let admin = app.identity.admin_token("operator");
    let user = app.paying_token("alice");

    check("get", "/healthz", 200, app.get("/healthz").await).await;
    check("get", "/readyz", 200, app.get("/readyz").await).await;
    check("get", "/regions", 401, app.get("/regions").await).await;
    check("get", "/hasura/auth", 200, app.get("/hasura/auth").await).await;
    check(
        "get",
        "/hasura/auth",
        200,
        app.get_with_token("/hasura/auth", &user).await,
    )
    .await;

    // Assignment: refused, malformed, then assigned.
    let assign = "/mandelbox/assign";
    let body = assign_body("alice", "us-east-1", "abc");
    check("post", assign, 503, app.assign_body(&user, &body).await).await;
    let malformed = serde_json::json!({"username": "alice"});
    check(
        "post",
        assign,
        400,
        app.assign_body(&user, &malformed).await,
    )
    .await;
    check(
        "post",
        assign,
        403,
        app.assign_body(&app.paying_token("bob"), &body).await,
    )
    .await;
    app.add_region("us-east-1", "abc", "ami-us-east-1", true, true);
    check(
        "get",
        "/regions",
        200,
        app.get_with_token("/regions", &user).await,
    )
    .await;
    let host = "us-east-1-main-abc1234-uid-0000000001";
    let secret = app.launch_instance(host, "us-east-1", "abc");
    let registered = app.register(&registration(host, &secret, 4)).await;
    let registered = check("post", "/host_service/register", 200, registered).await;
    let token = registered["auth_token"].as_str().unwrap().to_owned();
    let assigned = check("post", assign, 202, app.assign_body(&user, &body).await).await;
    let id = assigned["mandelbox_id"].as_str().unwrap().to_owned();

    // The host protocol.
    let register = serde_json::json!({"instance_name": "nobody", "bootstrap_secret": "x"});
    check(
        "post",
        "/host_service/register",
        400,
        app.register(&register).await,
    )
    .await;
    let beat = serde_json::json!({
        "memory_remaining_kb": 1, "nanocpus_remaining": 1, "gpu_vram_remaining_kb": 1,
    });
    let heartbeat = "/host_service/heartbeat";
    let response = app
        .as_host(reqwest::Method::POST, heartbeat, &token)
        .json(&beat)
        .send()
        .await
        .unwrap();
    check("post", heartbeat, 200, response).await;
    let (stranger, _) = auth::host::new_host_token().unwrap();
    let response = app
        .as_host(
            reqwest::Method::POST,
            heartbeat,
            secrecy::ExposeSecret::expose_secret(&stranger),
        )
        .json(&beat)
        .send()
        .await
        .unwrap();
    check("post", heartbeat, 401, response).await;
    let status_path = "/host_service/mandelbox/{id}/status";
    let response = app
        .as_host(
            reqwest::Method::PUT,
            &format!("/host_service/mandelbox/{id}/status"),
            &token,
        )
        .json(&serde_json::json!({"status": "RUNNING"}))
        .send()
        .await
        .unwrap();
    check("put", status_path, 200, response).await;
    let unknown = "6f1c1a2e-0000-4000-8000-000000000000";
    let response = app
        .as_host(
            reqwest::Method::PUT,
            &format!("/host_service/mandelbox/{unknown}/status"),
            &token,
        )
        .json(&serde_json::json!({"status": "RUNNING"}))
        .send()
        .await
        .unwrap();
    check("put", status_path, 404, response).await;
    let delete_path = "/host_service/mandelbox/{id}";
    let response = app
        .as_host(
            reqwest::Method::DELETE,
            &format!("/host_service/mandelbox/{id}"),
            &token,
        )
        .send()
        .await
        .unwrap();
    check("delete", delete_path, 200, response).await;

    // Operators and the rest.
    check(
        "get",
        "/fleet",
        200,
        app.get_with_token("/fleet", &admin).await,
    )
    .await;
    check(
        "get",
        "/fleet",
        403,
        app.get_with_token("/fleet", &user).await,
    )
    .await;
    let drain = "/fleet/instances/{name}/drain";
    let response = app
        .client
        .post(app.url("/fleet/instances/us-east-1-main-abc1234-uid-0000000009/drain"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    check("post", drain, 404, response).await;
    let response = app
        .client
        .post(app.url("/mail"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let mail = answers_as_documented(&doc, "post", "/mail", response).await;
    assert!(matches!(mail.0, 400 | 503), "{mail:?}");
    let response = app
        .client
        .post(app.url("/stripe/customer_portal"))
        .bearer_auth(app.identity.token("carol"))
        .json(&serde_json::json!({"return_url": "https://example.com/back"}))
        .send()
        .await
        .unwrap();
    check("post", "/stripe/customer_portal", 400, response).await;
    assert_eq!(checked.get(), 21, "answers checked");
}

/// The checker itself refuses what the document does not say.
#[test]
fn the_checker_refuses_missing_extra_and_mistyped_fields() {
    let doc = serde_json::json!({"components": {"schemas": {"A": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string"}, "n": {"type": ["integer", "null"]}},
    }}}});
    let schema = serde_json::json!({"$ref": "#/components/schemas/A"});
    let fits = |value: Value| conforms(&doc, &schema, &value, "answer");
    assert!(fits(serde_json::json!({"id": "x", "n": null})).is_ok());
    assert!(fits(serde_json::json!({"n": 1})).is_err());
    assert!(fits(serde_json::json!({"id": 1})).is_err());
    assert!(fits(serde_json::json!({"id": "x", "extra": true})).is_err());
    assert!(fits(serde_json::json!({"id": "x", "n": 1.5})).is_err());
}
