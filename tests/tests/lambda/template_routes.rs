//! template.yaml against the code: the HTTP API has exactly the routes of the contract
//! (docs/openapi.json) plus the API's own OpenAPI document and health check, each wired to the
//! function whose router serves it, every function has its log group, and the scheduled sync
//! has its schedule.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request};
use orchestration_tests::{Backend, TestTable};
use serde_yaml_ng::Value as Yaml;
use shared::http::AppState;
use shared::repo::Repository;
use tower::ServiceExt;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Routes of the HTTP API that are not contract operations: (method, path, logical id of the
/// function that serves them). They need no key.
const NON_CONTRACT_ROUTES: [(&str, &str, &str); 2] = [
    ("GET", "/api/v1.0/openapi.json", "PipelinesFunction"),
    ("GET", "/api/v1.0/health", "PipelinesFunction"),
];

fn non_contract_owner(route: &Route) -> Option<&'static str> {
    NON_CONTRACT_ROUTES
        .iter()
        .find(|(method, path, _)| route.method == *method && route.path == *path)
        .map(|(_, _, owner)| *owner)
}

/// A function of the template.
#[derive(Debug)]
struct TemplateFunction {
    /// Logical id (`PipelinesFunction`).
    id: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary built for it.
    binary: String,
    /// Event name → event (`Type`, `Properties`).
    events: BTreeMap<String, Yaml>,
}

/// An `HttpApi` event: (method, path) of one route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Route {
    method: String,
    path: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(format!("{ROOT}/template.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("template.yaml parses (CloudFormation tags included)")
}

fn str_of<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a plain string, found {value:?}"))
}

/// `!Tag value` as (tag without `!`, value).
fn tagged(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_string(),
            &tagged.value,
        )),
        _ => None,
    }
}

fn resources(template: &Yaml) -> Vec<(String, &Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(id, resource)| (str_of(id, "a resource id").to_string(), resource))
        .collect()
}

fn functions(template: &Yaml) -> Vec<TemplateFunction> {
    resources(template)
        .into_iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, resource)| {
            let binary =
                str_of(&resource["Metadata"]["BuildProperties"]["Binary"], &id).to_string();
            assert_eq!(
                resource["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id} is built with cargo-lambda"
            );
            let events = resource["Properties"]["Events"]
                .as_mapping()
                .map(|events| {
                    events
                        .iter()
                        .map(|(name, event)| {
                            (str_of(name, "an event name").to_string(), event.clone())
                        })
                        .collect()
                })
                .unwrap_or_default();
            TemplateFunction { id, binary, events }
        })
        .collect()
}

/// The `HttpApi` routes of one function, checked to be attached to the template's HTTP API.
fn http_routes(template: &Yaml, function: &TemplateFunction) -> Vec<Route> {
    function
        .events
        .iter()
        .filter(|(_, event)| event["Type"].as_str() == Some("HttpApi"))
        .map(|(name, event)| {
            let what = format!("{}.{name}", function.id);
            let properties = &event["Properties"];
            let api = tagged(&properties["ApiId"])
                .filter(|(tag, _)| tag == "Ref")
                .map(|(_, target)| str_of(target, &what).to_string())
                .unwrap_or_else(|| panic!("{what}: ApiId is a !Ref to the HTTP API"));
            assert_eq!(
                template["Resources"][api.as_str()]["Type"].as_str(),
                Some("AWS::Serverless::HttpApi"),
                "{what}: ApiId {api} is the template's HTTP API"
            );
            Route {
                method: str_of(&properties["Method"], &what).to_string(),
                path: str_of(&properties["Path"], &what).to_string(),
            }
        })
        .collect()
}

/// Every operation of docs/openapi.json.
fn documented_routes() -> BTreeSet<Route> {
    let text = std::fs::read_to_string(format!("{ROOT}/docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                routes.insert(Route {
                    method: method.to_uppercase(),
                    path: path.clone(),
                });
            }
        }
    }
    routes
}

/// The router the function's `main` runs, by its binary's name.
fn router_of(binary: &str, state: AppState) -> Option<axum::Router> {
    Some(match binary {
        "pipelines" => pipelines_function::router(state),
        "runs" => runs_function::router(state),
        "comments" => comments_function::router(state),
        "connectors" => connectors_function::router(state),
        _ => return None,
    })
}

/// (1) The HTTP API routes are exactly the contract's operations and the non-contract routes,
/// each once, no catch-all; the non-contract routes go to their function.
#[test]
fn http_api_routes_are_exactly_the_documented_operations() {
    let template = template();
    let mut seen: BTreeMap<Route, String> = BTreeMap::new();
    for function in functions(&template) {
        for route in http_routes(&template, &function) {
            assert!(
                route.method != "ANY" && route.method != "*",
                "{route} ({}): no catch-all method",
                function.id
            );
            assert!(
                !route.path.contains('+') && route.path != "$default",
                "{route} ({}): no greedy or default route",
                function.id
            );
            if let Some(other) = seen.insert(route.clone(), function.id.clone()) {
                panic!("{route} is routed twice: to {other} and {}", function.id);
            }
        }
    }
    for (method, path, owner) in NON_CONTRACT_ROUTES {
        let route = Route {
            method: method.to_string(),
            path: path.to_string(),
        };
        assert_eq!(
            seen.get(&route).map(String::as_str),
            Some(owner),
            "{route} is routed to {owner}"
        );
    }
    let routed: BTreeSet<Route> = seen.keys().cloned().collect();
    let documented = documented_routes();
    let missing: Vec<String> = documented
        .difference(&routed)
        .map(Route::to_string)
        .collect();
    let extra: Vec<String> = routed
        .difference(&documented)
        .filter(|route| non_contract_owner(route).is_none())
        .map(Route::to_string)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "template.yaml vs docs/openapi.json: missing {missing:?}, not documented {extra:?}"
    );
    assert_eq!(
        routed
            .iter()
            .filter(|route| non_contract_owner(route).is_none())
            .count(),
        20,
        "every operation of the contract, and the two of issue 17 (events)"
    );
}

/// (2) Each route goes to the function whose router serves it: without a key the owner answers
/// 401 (routed; authentication comes first) or, for a non-contract route, 200 (no key needed),
/// every other HTTP function 404 (not its route).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_goes_to_the_function_that_serves_it() {
    let table = TestTable::new(Backend::Embedded).await;
    let state = AppState::new(Repository::new(table.table.clone()));
    let template = template();
    let functions = functions(&template);
    let http_functions: Vec<&TemplateFunction> = functions
        .iter()
        .filter(|f| {
            f.events
                .values()
                .any(|e| e["Type"].as_str() == Some("HttpApi"))
        })
        .collect();
    assert_eq!(
        http_functions
            .iter()
            .map(|f| f.binary.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["comments", "connectors", "pipelines", "runs"]),
        "one HTTP function per endpoint group"
    );
    for owner in &http_functions {
        for route in http_routes(&template, owner) {
            let mut path = route.path.replace("{slug}", "acme");
            while let Some(start) = path.find('{') {
                let end = start + path[start..].find('}').unwrap();
                path.replace_range(start..=end, &uuid::Uuid::new_v4().to_string());
            }
            for function in &http_functions {
                let router = router_of(&function.binary, state.clone())
                    .unwrap_or_else(|| panic!("no router for binary {}", function.binary));
                let request = Request::builder()
                    .method(Method::from_bytes(route.method.as_bytes()).unwrap())
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap();
                let status = router.oneshot(request).await.unwrap().status().as_u16();
                let expected = match (function.id == owner.id, non_contract_owner(&route)) {
                    (true, Some(_)) => 200,
                    (true, None) => 401,
                    (false, _) => 404,
                };
                assert_eq!(
                    status, expected,
                    "{route} (template: {}) sent to {} ({})",
                    owner.id, function.id, function.binary
                );
            }
        }
    }
}

/// Each template function builds a binary of the workspace.
#[test]
fn every_function_builds_a_workspace_binary() {
    let mut binaries = BTreeSet::new();
    for entry in std::fs::read_dir(format!("{ROOT}/functions")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        for section in text.split("[[bin]]").skip(1) {
            let name = section
                .lines()
                .find_map(|line| line.trim().strip_prefix("name = "))
                .unwrap_or_else(|| panic!("{}: [[bin]] without a name", manifest.display()));
            binaries.insert(name.trim_matches('"').to_string());
        }
    }
    let template = template();
    let built: BTreeSet<String> = functions(&template).into_iter().map(|f| f.binary).collect();
    assert_eq!(
        built, binaries,
        "template functions vs the functions' [[bin]] targets"
    );
}

/// (3) Every function has a log group (its Lambda log group, with a retention), and the
/// scheduled sync runs on an EventBridge Scheduler schedule.
#[test]
fn every_function_has_a_log_group_and_the_sync_a_schedule() {
    let template = template();
    let functions = functions(&template);
    assert_eq!(
        functions.len(),
        5,
        "four endpoint groups and the scheduled sync"
    );
    let log_groups: Vec<(String, &Yaml)> = resources(&template)
        .into_iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Logs::LogGroup"))
        .collect();
    for function in &functions {
        let expected = format!("/aws/lambda/${{{}}}", function.id);
        let group = log_groups
            .iter()
            .find(|(_, group)| {
                tagged(&group["Properties"]["LogGroupName"])
                    .is_some_and(|(tag, name)| tag == "Sub" && name.as_str() == Some(&expected))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: no AWS::Logs::LogGroup named !Sub {expected}",
                    function.id
                )
            });
        assert!(
            !group.1["Properties"]["RetentionInDays"].is_null(),
            "{}: log group {} has a retention",
            function.id,
            group.0
        );
    }

    let sync = functions
        .iter()
        .find(|f| f.binary == "scheduled-sync")
        .expect("the scheduled-sync function");
    let schedules: Vec<&Yaml> = sync
        .events
        .values()
        .filter(|e| e["Type"].as_str() == Some("ScheduleV2"))
        .collect();
    assert_eq!(schedules.len(), 1, "{}: one ScheduleV2 event", sync.id);
    assert!(
        !schedules[0]["Properties"]["ScheduleExpression"].is_null(),
        "{}: the schedule has an expression",
        sync.id
    );
    assert!(
        sync.events
            .values()
            .all(|e| e["Type"].as_str() == Some("ScheduleV2")),
        "{}: only its schedule invokes it",
        sync.id
    );
    for function in functions.iter().filter(|f| f.binary != "scheduled-sync") {
        assert!(
            function
                .events
                .values()
                .all(|e| e["Type"].as_str() == Some("HttpApi")),
            "{}: invoked by the HTTP API only",
            function.id
        );
    }
}

/// The request deadline the functions answer sync and trigger by stays below their Lambda
/// `Timeout` and API Gateway's 29 s cut, with room for the function's own start: at its
/// largest allowed value as at its default.
#[test]
fn the_request_deadline_fits_the_function_timeout_and_api_gateway() {
    let template = template();
    let parameter = &template["Parameters"]["RequestDeadlineSeconds"];
    let largest = parameter["MaxValue"].as_u64().expect("a MaxValue");
    let default = parameter["Default"].as_u64().expect("a Default");
    assert!(default <= largest);
    let globals = &template["Globals"]["Function"];
    let timeout = globals["Timeout"].as_u64().expect("a global Timeout");
    assert!(timeout <= 29, "API Gateway cuts at 29 s; Timeout {timeout}");
    assert!(
        largest + 2 <= timeout,
        "a deadline of {largest} s leaves too little of the {timeout} s Timeout"
    );
    assert_eq!(
        globals["Environment"]["Variables"]["ORCHESTRATION_REQUEST_DEADLINE_SECONDS"],
        serde_yaml_ng::from_str::<Yaml>("!Ref RequestDeadlineSeconds").unwrap(),
    );
    // The functions accept every value the template allows.
    for seconds in [parameter["MinValue"].as_u64().unwrap(), default, largest] {
        let value = seconds.to_string();
        assert!(
            shared::config::request_deadline_from_lookup(|_| Some(value.clone())).is_ok(),
            "{seconds}"
        );
    }
    // HTTP functions keep the global Timeout (only the scheduled sync has its own).
    for (id, resource) in resources(&template) {
        let own = &resource["Properties"]["Timeout"];
        if resource["Type"] == "AWS::Serverless::Function" && id != "ScheduledSyncFunction" {
            assert!(own.is_null(), "{id} overrides the Timeout");
        }
    }
}
