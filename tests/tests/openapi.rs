//! The OpenAPI document: generated from the code, committed, current, and describing routes
//! that exist.

use orchestration_tests::Backend;
use orchestration_tests::app::TestApp;

#[test]
fn committed_document_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json exists");
    assert!(
        committed == local::openapi_text(),
        "docs/openapi.json is stale: run scripts/openapi and commit the result"
    );
}

#[test]
fn document_is_openapi_3_1_with_every_operation_secured() {
    let doc: serde_json::Value = serde_json::from_str(&local::openapi_text()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    let paths = doc["paths"].as_object().unwrap();
    let operations: usize = paths
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations, 18,
        "every operation of the contract is documented"
    );
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "404", "422", "500"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has a success response"
            );
            let ok = responses.get("200").cloned().unwrap_or_default();
            if ok["content"]["application/json"]["schema"]["type"] == "array" {
                for header in [
                    "X-Total-Count",
                    "X-Page",
                    "X-Page-Size",
                    "X-Total-Pages",
                    "Link",
                ] {
                    assert!(
                        ok["headers"].get(header).is_some(),
                        "{method} {path} documents {header}"
                    );
                }
            }
        }
    }
}

/// Every documented operation is routed: without a key each answers 401 (not 404 or 405).
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn(Backend::Embedded).await;
    let doc: serde_json::Value = serde_json::from_str(&local::openapi_text()).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{slug}", "acme")
            .replace("{pipeline_id}", &id)
            .replace("{run_id}", &id)
            .replace("{task_run_id}", &id)
            .replace("{comment_id}", &id)
            .replace("{connector_id}", &id);
        assert!(!concrete.contains('{'), "unhandled parameter in {path}");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), format!("{}{concrete}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{method} {path}");
        }
    }
    // And the local server publishes the same document.
    let served: serde_json::Value = app
        .client
        .get(format!("{}{}", app.base, local::OPENAPI_PATH))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, doc);
}
