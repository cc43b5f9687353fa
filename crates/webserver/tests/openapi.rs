//! `GET /openapi.json` documents every registered route, and `/docs` shows it without
//! loading anything from elsewhere.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{TestApp, json};
use reqwest::StatusCode;

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
