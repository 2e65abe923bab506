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
        operations, 20,
        "every operation of the contract is documented, and the two of issue 17 (events)"
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

/// What a generated client needs from the document (docs/API.md, "Field formats"): servers,
/// every response field required (absent values are `null`, never missing keys), and the
/// trigger's optional body as an optional `TriggerBody`, not `oneOf: [null, TriggerBody]`.
#[test]
fn document_is_complete_for_generated_clients() {
    let doc: serde_json::Value = serde_json::from_str(&local::openapi_text()).unwrap();
    let servers = doc["servers"].as_array().expect("servers are declared");
    let urls: Vec<&str> = servers.iter().map(|s| s["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        [
            "https://{api_id}.execute-api.{region}.amazonaws.com",
            "http://127.0.0.1:3000"
        ]
    );
    for variable in ["api_id", "region"] {
        assert!(servers[0]["variables"][variable]["default"].is_string());
    }

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let response_schemas = [
        "PipelineView",
        "SummaryView",
        "LastRunView",
        "RunView",
        "TaskRunView",
        "CommentView",
        "AuthorView",
        "SyncRecord",
        "SyncCounts",
        "Counts",
        "ErrorBody",
        "ValidationErrorBody",
        "FieldError",
    ];
    for name in response_schemas {
        let schema = &schemas[name];
        let properties: std::collections::BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let required: std::collections::BTreeSet<&String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| match r {
                serde_json::Value::String(s) => s,
                _ => panic!("{name}: required holds strings"),
            })
            .collect();
        assert_eq!(properties, required, "{name}: every field is required");
    }
    for (name, field) in [
        ("PipelineView", "team_id"),
        ("PipelineView", "criticality"),
        ("SummaryView", "last_run"),
        ("RunView", "ended_at"),
        ("SyncRecord", "finished_at"),
    ] {
        assert!(
            schemas[name]["required"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(field)),
            "{name}.{field} is nullable and always present"
        );
    }
    // Request bodies keep their optional fields optional.
    assert!(schemas["TriggerBody"].get("required").is_none());

    let trigger = &doc["paths"]["/api/v1.0/spaces/{slug}/orchestration/pipelines/{pipeline_id}/trigger"]
        ["post"]["requestBody"];
    assert_eq!(trigger["required"], false, "{trigger}");
    assert_eq!(
        trigger["content"]["application/json"]["schema"],
        serde_json::json!({"$ref": "#/components/schemas/TriggerBody"})
    );
    let text = local::openapi_text();
    for path in doc["paths"].as_object().unwrap().values() {
        for operation in path.as_object().unwrap().values() {
            if let Some(body) = operation.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                assert!(schema.get("oneOf").is_none(), "{schema}");
            }
        }
    }
    assert!(
        text.contains("\"default\": 7"),
        "days documents its default"
    );
}
