//! A recording HTTP proxy in front of moto: what AWS operations a process really issues.
//!
//! A process under test gets `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL_SECRETS_MANAGER`
//! (the SDK's name: the service id "Secrets Manager" upper-cased, spaces to underscores)
//! pointing at its own proxy; the proxy forwards every request to moto unchanged and records,
//! from the JSON body and `X-Amz-Target`, each operation as IAM authorises it: the action, the
//! resource ARN (table, index, secret) and the partition-key values it touches (what
//! `dynamodb:LeadingKeys` is evaluated against). A transaction is recorded as its items
//! (`TransactWriteItems` is authorised item by item as `PutItem`, `UpdateItem`, `DeleteItem`,
//! `ConditionCheckItem`); a batch as one operation per table with all its keys.
//!
//! Requests are not re-signed: moto does not check signatures, and the recording must see
//! exactly what the process sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use shared::store::{GSI1_PK, PK};

/// Region and account of moto's ARNs (and of the policy evaluation).
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// One authorised operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AwsCall {
    /// `dynamodb:GetItem`, `secretsmanager:GetSecretValue`, ...
    pub action: String,
    /// The resource ARN the action is authorised on.
    pub resource: String,
    /// Partition-key values of the items it reads or writes (empty for a table-wide call).
    pub leading_keys: Vec<String>,
    /// Condition keys a service adds itself (`kms:ViaService` on a decrypt for a secret).
    pub context: Vec<(String, String)>,
    /// moto's answer (a 4xx is a refused request, still authorised first).
    pub status: u16,
}

impl std::fmt::Display for AwsCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        if !self.leading_keys.is_empty() {
            write!(f, " keys {:?}", self.leading_keys)?;
        }
        for (key, value) in &self.context {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

pub fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

/// The running proxy; stops when dropped.
pub struct RecordingProxy {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<AwsCall>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingProxy {
    /// Listens on a loopback port and forwards to `upstream` (moto's base URL).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the recording proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let proxy = Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("proxy client"),
            calls: calls.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("recording proxy");
        });
        Self { addr, calls, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every operation recorded so far, in order.
    pub fn calls(&self) -> Vec<AwsCall> {
        self.calls.lock().expect("recorded calls").clone()
    }
}

/// Headers that describe one hop's connection, not the message.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
    )
}

async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(body) => body,
        Err(error) => return failure(format!("request body: {error}")),
    };
    let url = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = proxy.client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.body(body.clone()).send().await {
        Ok(answer) => answer,
        Err(error) => return failure(format!("moto: {error}")),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return failure(format!("moto body: {error}")),
    };
    let recorded = operations(&parts.headers, &body, status.as_u16());
    proxy.calls.lock().expect("recorded calls").extend(recorded);
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !hop_by_hop(name.as_str()) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(bytes)).expect("proxied response")
}

fn failure(reason: String) -> Response {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .body(Body::from(reason))
        .expect("error response")
}

/// The operations one request stands for.
fn operations(headers: &HeaderMap, body: &[u8], status: u16) -> Vec<AwsCall> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let call = |action: String, resource: String, leading_keys: Vec<String>| AwsCall {
        action,
        resource,
        leading_keys,
        context: Vec::new(),
        status,
    };
    if let Some(operation) = target.strip_prefix("DynamoDB_20120810.") {
        dynamodb(operation, &json)
            .into_iter()
            .map(|(action, resource, keys)| call(format!("dynamodb:{action}"), resource, keys))
            .collect()
    } else if let Some(operation) = target.strip_prefix("secretsmanager.") {
        let secret = json["SecretId"].as_str().unwrap_or("*").to_string();
        vec![call(format!("secretsmanager:{operation}"), secret, vec![])]
    } else if let Some(operation) = target.strip_prefix("AWSEvents.") {
        // PutEvents is authorised per entry, on the entry's bus (a name or an ARN).
        let buses: Vec<String> = json["Entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|entry| event_bus_arn(entry["EventBusName"].as_str().unwrap_or("default")))
            .collect();
        buses
            .into_iter()
            .map(|bus| call(format!("events:{operation}"), bus, vec![]))
            .collect()
    } else {
        // Anything else is an operation the policies would have to name: record it as such.
        vec![call(format!("unknown:{target}"), "*".into(), vec![])]
    }
}

/// The ARN of an EventBridge bus given by name or ARN.
pub fn event_bus_arn(bus: &str) -> String {
    if bus.starts_with("arn:") {
        bus.to_string()
    } else {
        format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}")
    }
}

/// `(action, resource ARN, partition keys)` of one DynamoDB request.
fn dynamodb(operation: &str, body: &Value) -> Vec<(String, String, Vec<String>)> {
    let table = |body: &Value| table_arn(body["TableName"].as_str().unwrap_or("?"));
    let pk = |attributes: &Value| attributes[PK]["S"].as_str().map(str::to_string);
    match operation {
        "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" => {
            let keys = pk(&body["Key"]).or_else(|| pk(&body["Item"]));
            vec![(operation.into(), table(body), keys.into_iter().collect())]
        }
        "Query" => {
            let (resource, hash) = match body["IndexName"].as_str() {
                Some(index) => (format!("{}/index/{index}", table(body)), GSI1_PK),
                None => (table(body), PK),
            };
            let keys = partition_of_query(body, hash).into_iter().collect();
            vec![(operation.into(), resource, keys)]
        }
        "BatchGetItem" | "BatchWriteItem" => {
            let Some(tables) = body["RequestItems"].as_object() else {
                return vec![(operation.into(), "?".into(), vec![])];
            };
            tables
                .iter()
                .map(|(name, requests)| {
                    let keys: Vec<String> = match operation {
                        "BatchGetItem" => requests["Keys"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(pk)
                            .collect(),
                        _ => requests
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| {
                                pk(&r["PutRequest"]["Item"])
                                    .or_else(|| pk(&r["DeleteRequest"]["Key"]))
                            })
                            .collect(),
                    };
                    (operation.into(), table_arn(name), dedup(keys))
                })
                .collect()
        }
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let (kind, op) = entry.as_object()?.iter().next()?;
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => other,
                };
                let keys = pk(&op["Key"]).or_else(|| pk(&op["Item"]));
                Some((action.to_string(), table(op), keys.into_iter().collect()))
            })
            .collect(),
        // Table-level operations (DescribeTable, CreateTable, Scan, ...).
        _ => vec![(operation.into(), table(body), vec![])],
    }
}

fn dedup(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys.dedup();
    keys
}

/// The value a Query's key condition gives the hash key `hash`: the `name = :value` clause
/// whose name (directly or through `ExpressionAttributeNames`) is that attribute.
fn partition_of_query(body: &Value, hash: &str) -> Option<String> {
    let expression = body["KeyConditionExpression"].as_str()?;
    let resolve = |token: &str| -> String {
        body["ExpressionAttributeNames"][token]
            .as_str()
            .unwrap_or(token)
            .to_string()
    };
    expression
        .split(" AND ")
        .filter_map(|clause| clause.split_once('='))
        .map(|(name, value)| (name.trim(), value.trim()))
        .find(|(name, _)| resolve(name) == hash)
        .and_then(|(_, value)| body["ExpressionAttributeValues"][value]["S"].as_str())
        .map(str::to_string)
}

/// moto's base URL (`AWS_ENDPOINT_URL_DYNAMODB`, set by scripts/test); moto serves every
/// service on it.
pub fn moto_url() -> String {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"),
        "these tests need moto on loopback: run them through scripts/test (it starts moto and \
         sets AWS_ENDPOINT_URL_DYNAMODB), got {url:?}"
    );
    url
}

/// The AWS part of a function's environment: both services through `endpoint` (its recording
/// proxy), moto's region, dummy credentials, no instance metadata.
pub fn aws_environment(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Creates a connector secret in moto's Secrets Manager, under the template's
/// `ConnectorSecretsPrefix`, and returns its ARN.
pub async fn create_secret(moto: &str, value: &str) -> String {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto)
        .region(aws_config::Region::new(REGION))
        .load()
        .await;
    let name = format!(
        "orchestration/connectors/fixture-airflow-{}",
        uuid::Uuid::new_v4()
    );
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create the connector secret in moto")
        .arn
        .expect("the secret's ARN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transactions_are_recorded_item_by_item_and_queries_by_partition() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"PK": {"S": "RUN#1"}, "SK": {"S": "RUN"}}}},
            {"Update": {"TableName": "t", "Key": {"PK": {"S": "SPACE#1"}, "SK": {"S": "P"}}}}
        ]});
        let calls = dynamodb("TransactWriteItems", &body);
        assert_eq!(calls[0].0, "PutItem");
        assert_eq!(calls[0].2, ["RUN#1"]);
        assert_eq!(calls[1].0, "UpdateItem");
        assert_eq!(calls[1].1, table_arn("t"));
        let query = json!({
            "TableName": "t", "IndexName": "GSI1",
            "KeyConditionExpression": "#n0 = :v0 AND #n1 > :v1",
            "ExpressionAttributeNames": {"#n0": "GSI1PK", "#n1": "GSI1SK"},
            "ExpressionAttributeValues": {":v0": {"S": "RUNS#1"}, ":v1": {"S": "x"}}
        });
        let calls = dynamodb("Query", &query);
        assert_eq!(calls[0].1, format!("{}/index/GSI1", table_arn("t")));
        assert_eq!(calls[0].2, ["RUNS#1"]);
    }
}
