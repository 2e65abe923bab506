//! A fake Airflow 3 (`/api/v2` with JWTs) on loopback, backed by state the test controls, with
//! fault injection by request index. It implements what the sync reads — DAGs, DAG runs and
//! task instances (`~` wildcards, `updated_at_gte`, `order_by=id`, offset/limit capped at 100),
//! task-instance tries, token issue — and trigger, with Airflow's real response shapes.
//!
//! Clients reach it through a [`FaultProxy`], so besides HTTP-level faults it can also reset a
//! connection or cut a response body short, as a real network does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fault_proxy::{self, FaultProxy};

/// What to answer instead of the real response.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error status with Airflow's body shape.
    Status(u16),
    /// 429 with `Retry-After` (seconds).
    TooManyRequests(u64),
    /// The real answer, but only after this delay (beyond the client's timeout: a timeout).
    Delay(Duration),
    /// 200 with a body that is not JSON.
    Garbage,
    /// 401: the token is no longer valid (the client must fetch a new one).
    ExpiredToken,
    /// The connection is reset (TCP RST) before any byte of the answer.
    Reset,
    /// The real answer's head and half its body, then the connection closes (the body is
    /// shorter than its `Content-Length`).
    Truncated,
    /// The connection is accepted and the request read, but nothing is ever answered.
    Hang,
    /// The real answer, one byte a second.
    Drip,
}

#[derive(Debug, Clone)]
pub struct FakeRun {
    /// Airflow's internal run id: the `order_by=id` key.
    pub id: u64,
    pub dag_id: String,
    pub dag_run_id: String,
    pub state: String,
    pub run_type: String,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct FakeTry {
    pub try_number: u32,
    pub state: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct FakeTaskInstance {
    /// Airflow's task instance id (a UUIDv7, sortable): the `order_by=id` key.
    pub id: String,
    pub dag_id: String,
    pub dag_run_id: String,
    pub task_id: String,
    pub map_index: i64,
    /// Every try, oldest first; the last is the current one.
    pub tries: Vec<FakeTry>,
    pub updated_at: DateTime<Utc>,
}

/// Runs before request `n` is answered, with the state (to change data between pages).
type RequestHook = Box<dyn FnMut(usize, &mut AirflowState) + Send>;

#[derive(Default)]
pub struct AirflowState {
    /// dag_id → (is_paused, is_stale, owner)
    pub dags: BTreeMap<String, (bool, bool, String)>,
    pub runs: Vec<FakeRun>,
    pub task_instances: Vec<FakeTaskInstance>,
    next_id: u64,
    /// Requests answered so far (token requests included).
    pub requests: usize,
    /// "METHOD /path" of every request, in order.
    pub log: Vec<String>,
    /// request index → fault, consumed when hit.
    faults: BTreeMap<usize, Fault>,
    /// Faults for the next requests whatever their index.
    queued_faults: VecDeque<Fault>,
    tokens_issued: usize,
    /// Called before answering request `n` (to change the data between pages).
    on_request: Option<RequestHook>,
    /// Added to every API answer (token requests excepted): a slow Airflow.
    latency: Option<Duration>,
}

impl AirflowState {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn add_dag(&mut self, dag_id: &str, owner: &str) {
        self.dags
            .insert(dag_id.to_string(), (false, false, owner.to_string()));
    }

    /// Adds a finished run with one task per name (each one try), all updated `at`.
    pub fn add_run(
        &mut self,
        dag_id: &str,
        dag_run_id: &str,
        state: &str,
        at: DateTime<Utc>,
        tasks: &[&str],
    ) {
        let at = micros(at);
        let id = self.next_id();
        let start = at - chrono::Duration::minutes(10);
        let finished = matches!(state, "success" | "failed");
        self.runs.push(FakeRun {
            id,
            dag_id: dag_id.into(),
            dag_run_id: dag_run_id.into(),
            state: state.into(),
            run_type: "scheduled".into(),
            start_date: Some(start),
            end_date: finished.then_some(at),
            updated_at: at,
        });
        for task in tasks {
            let ti_id = self.next_id();
            self.task_instances.push(FakeTaskInstance {
                id: format!("{ti_id:020}"),
                dag_id: dag_id.into(),
                dag_run_id: dag_run_id.into(),
                task_id: (*task).into(),
                map_index: -1,
                tries: vec![FakeTry {
                    try_number: 1,
                    state: Some(if finished {
                        state.to_string()
                    } else {
                        "running".to_string()
                    }),
                    start_date: Some(start),
                    end_date: finished.then_some(at),
                }],
                updated_at: at,
            });
        }
    }

    /// Moves a run to a new state (and its task instances with it), updated `at`.
    pub fn finish_run(&mut self, dag_run_id: &str, state: &str, at: DateTime<Utc>) {
        let at = micros(at);
        for run in self.runs.iter_mut().filter(|r| r.dag_run_id == dag_run_id) {
            run.state = state.into();
            run.end_date = Some(at);
            run.updated_at = at;
        }
        for ti in self
            .task_instances
            .iter_mut()
            .filter(|t| t.dag_run_id == dag_run_id)
        {
            if let Some(current) = ti.tries.last_mut() {
                current.state = Some(state.into());
                current.end_date = Some(at);
            }
            ti.updated_at = at;
        }
    }

    /// Adds a retry to a task instance: the current try fails, a new one succeeds.
    pub fn retry_task(&mut self, dag_run_id: &str, task_id: &str, at: DateTime<Utc>) {
        let at = micros(at);
        for ti in self
            .task_instances
            .iter_mut()
            .filter(|t| t.dag_run_id == dag_run_id && t.task_id == task_id)
        {
            let next = ti.tries.len() as u32 + 1;
            if let Some(current) = ti.tries.last_mut() {
                current.state = Some("failed".into());
            }
            ti.tries.push(FakeTry {
                try_number: next,
                state: Some("success".into()),
                start_date: Some(at - chrono::Duration::minutes(1)),
                end_date: Some(at),
            });
            ti.updated_at = at;
        }
    }

    /// Injects `fault` as the answer to request number `index` (0-based, token requests included).
    pub fn fault_at(&mut self, index: usize, fault: Fault) {
        self.faults.insert(index, fault);
    }

    /// Injects faults for consecutive requests from `index` on (enough to outlast retries).
    pub fn fault_next_at(&mut self, index: usize, faults: impl IntoIterator<Item = Fault>) {
        for (offset, fault) in faults.into_iter().enumerate() {
            self.faults.insert(index + offset, fault);
        }
    }

    /// Injects faults for the next API requests (token requests excepted), in order.
    pub fn fault_next(&mut self, faults: impl IntoIterator<Item = Fault>) {
        self.queued_faults.extend(faults);
    }

    /// Drops every injected fault not hit yet.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.queued_faults.clear();
    }

    /// Makes every API answer (token requests excepted) take at least `latency`.
    pub fn set_latency(&mut self, latency: Option<Duration>) {
        self.latency = latency;
    }

    /// Adds `count` mapped instances (map indexes 0..count) of `task_id` to a run, one try
    /// each, in the run's state, updated `at`.
    pub fn add_mapped_task(
        &mut self,
        dag_run_id: &str,
        task_id: &str,
        count: i64,
        at: DateTime<Utc>,
    ) {
        let at = micros(at);
        let run = self
            .runs
            .iter()
            .find(|r| r.dag_run_id == dag_run_id)
            .cloned()
            .expect("add_mapped_task: the run exists");
        let finished = matches!(run.state.as_str(), "success" | "failed");
        for map_index in 0..count {
            let ti_id = self.next_id();
            self.task_instances.push(FakeTaskInstance {
                id: format!("{ti_id:020}"),
                dag_id: run.dag_id.clone(),
                dag_run_id: dag_run_id.into(),
                task_id: task_id.into(),
                map_index,
                tries: vec![FakeTry {
                    try_number: 1,
                    state: Some(if finished {
                        run.state.clone()
                    } else {
                        "running".to_string()
                    }),
                    start_date: run.start_date,
                    end_date: finished.then_some(at),
                }],
                updated_at: at,
            });
        }
    }

    /// Retries one mapped instance (`map_index`), like [`AirflowState::retry_task`].
    pub fn retry_mapped_task(
        &mut self,
        dag_run_id: &str,
        task_id: &str,
        map_index: i64,
        at: DateTime<Utc>,
    ) {
        let at = micros(at);
        for ti in self.task_instances.iter_mut().filter(|t| {
            t.dag_run_id == dag_run_id && t.task_id == task_id && t.map_index == map_index
        }) {
            let next = ti.tries.len() as u32 + 1;
            if let Some(current) = ti.tries.last_mut() {
                current.state = Some("failed".into());
            }
            ti.tries.push(FakeTry {
                try_number: next,
                state: Some("success".into()),
                start_date: Some(at - chrono::Duration::minutes(1)),
                end_date: Some(at),
            });
            ti.updated_at = at;
        }
    }

    pub fn on_request(&mut self, hook: impl FnMut(usize, &mut AirflowState) + Send + 'static) {
        self.on_request = Some(Box::new(hook));
    }

    pub fn tokens_issued(&self) -> usize {
        self.tokens_issued
    }
}

/// Airflow keeps microseconds; so does the fake.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    at.duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(at)
}

fn stamp(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| {
        Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    })
}

fn dag_json(dag_id: &str, (paused, stale, owner): &(bool, bool, String)) -> Value {
    json!({
        "dag_id": dag_id, "dag_display_name": dag_id, "is_paused": paused, "is_stale": stale,
        "description": format!("{dag_id} description"), "owners": [owner],
        "tags": [{"name": "fake", "dag_id": dag_id}], "timetable_summary": "@daily",
        "fileloc": format!("/dags/{dag_id}.py"), "last_parsed_time": Utc::now().to_rfc3339(),
        "has_import_errors": false, "max_active_runs": 16, "bundle_name": "dags-folder"
    })
}

fn run_json(run: &FakeRun) -> Value {
    json!({
        "dag_run_id": run.dag_run_id, "dag_id": run.dag_id, "logical_date": stamp(run.start_date),
        "queued_at": stamp(run.start_date), "start_date": stamp(run.start_date), "end_date": stamp(run.end_date),
        "run_after": stamp(run.start_date), "run_type": run.run_type, "state": run.state,
        "triggered_by": "timetable", "conf": {}, "note": null,
        "last_scheduling_decision": Utc::now().to_rfc3339(), "future_field": {"added": "in a later release"}
    })
}

fn try_json(ti: &FakeTaskInstance, attempt: &FakeTry) -> Value {
    json!({
        "id": ti.id, "task_id": ti.task_id, "dag_id": ti.dag_id, "dag_run_id": ti.dag_run_id,
        "map_index": ti.map_index, "try_number": attempt.try_number, "state": attempt.state,
        "start_date": stamp(attempt.start_date), "end_date": stamp(attempt.end_date),
        "task_display_name": ti.task_id, "operator": "BashOperator", "hostname": "fake"
    })
}

fn segments(request: &Request) -> Vec<String> {
    request
        .url
        .path_segments()
        .map(|s| {
            s.map(|seg| percent_decode_str(seg).decode_utf8_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn param(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn page<T>(items: Vec<T>, request: &Request) -> (Vec<T>, usize) {
    let total = items.len();
    let offset: usize = param(request, "offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = param(request, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .min(100);
    (items.into_iter().skip(offset).take(limit).collect(), total)
}

fn since(request: &Request) -> Option<DateTime<Utc>> {
    param(request, "updated_at_gte")
        .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn error(status: u16, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "detail": detail }))
}

struct Responder(Arc<Mutex<AirflowState>>);

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        crate::exposure::record_airflow_request(
            &request.headers,
            request.url.path(),
            &request.body,
        );
        let mut state = self.0.lock().expect("fake airflow state");
        let index = state.requests;
        state.requests += 1;
        state
            .log
            .push(format!("{} {}", request.method, request.url.path()));
        if let Some(mut hook) = state.on_request.take() {
            hook(index, &mut state);
            state.on_request = Some(hook);
        }
        // Queued faults are for API calls, not for the token endpoint.
        let is_token = request.url.path() == "/auth/token";
        let fault = state.faults.remove(&index).or_else(|| {
            if is_token {
                None
            } else {
                state.queued_faults.pop_front()
            }
        });
        // A delay fault replaces the latency (both would set the one delay of the answer).
        let latency = state
            .latency
            .filter(|_| !is_token && !matches!(fault, Some(Fault::Delay(_))));
        // A faulted request has no effect (the fault stands for "never reached Airflow" or "Airflow failed").
        let response = match fault {
            None => answer(&mut state, request),
            Some(Fault::Status(status)) => error(status, "injected failure"),
            Some(Fault::TooManyRequests(seconds)) => error(429, "Too many requests")
                .insert_header("Retry-After", seconds.to_string().as_str()),
            Some(Fault::Delay(delay)) => answer(&mut state, request).set_delay(delay),
            Some(Fault::Garbage) => {
                ResponseTemplate::new(200).set_body_string("{\"dag_runs\": [tru")
            }
            Some(Fault::ExpiredToken) => error(401, "Token has expired"),
            // Acted on by the proxy in front (see `fault_proxy`).
            Some(Fault::Reset) => ResponseTemplate::new(200)
                .insert_header(fault_proxy::FAULT_HEADER, fault_proxy::RESET),
            Some(Fault::Truncated) => answer(&mut state, request)
                .insert_header(fault_proxy::FAULT_HEADER, fault_proxy::TRUNCATE),
            Some(Fault::Hang) => ResponseTemplate::new(200)
                .insert_header(fault_proxy::FAULT_HEADER, fault_proxy::HANG),
            Some(Fault::Drip) => answer(&mut state, request)
                .insert_header(fault_proxy::FAULT_HEADER, fault_proxy::DRIP),
        };
        match latency {
            Some(latency) => response.set_delay(latency),
            None => response,
        }
    }
}

fn answer(state: &mut AirflowState, request: &Request) -> ResponseTemplate {
    let path = segments(request);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    if path == ["auth", "token"] {
        state.tokens_issued += 1;
        crate::exposure::record_secret(
            "airflow_token",
            &format!("fake.token.{}", state.tokens_issued),
        );
        return ResponseTemplate::new(201).set_body_json(
            json!({ "access_token": format!("fake.token.{}", state.tokens_issued) }),
        );
    }
    let authorised = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer fake.token."));
    if !authorised {
        return error(401, "Not authenticated");
    }
    match path.as_slice() {
        ["api", "v2", "dags"] => {
            let dags: Vec<Value> = state.dags.iter().map(|(id, d)| dag_json(id, d)).collect();
            let (items, total) = page(dags, request);
            ResponseTemplate::new(200)
                .set_body_json(json!({ "dags": items, "total_entries": total }))
        }
        ["api", "v2", "dags", "~", "dagRuns"] => {
            let since = since(request);
            let mut runs: Vec<&FakeRun> = state
                .runs
                .iter()
                .filter(|r| since.is_none_or(|s| r.updated_at >= s))
                .collect();
            runs.sort_by_key(|r| r.id);
            let (items, total) = page(runs.into_iter().map(run_json).collect(), request);
            ResponseTemplate::new(200)
                .set_body_json(json!({ "dag_runs": items, "total_entries": total }))
        }
        ["api", "v2", "dags", "~", "dagRuns", "~", "taskInstances"] => {
            let since = since(request);
            let mut tis: Vec<&FakeTaskInstance> = state
                .task_instances
                .iter()
                .filter(|t| since.is_none_or(|s| t.updated_at >= s))
                .collect();
            tis.sort_by(|a, b| a.id.cmp(&b.id));
            let current: Vec<Value> = tis
                .iter()
                .filter_map(|t| t.tries.last().map(|a| try_json(t, a)))
                .collect();
            let (items, total) = page(current, request);
            ResponseTemplate::new(200)
                .set_body_json(json!({ "task_instances": items, "total_entries": total }))
        }
        [
            "api",
            "v2",
            "dags",
            dag,
            "dagRuns",
            run,
            "taskInstances",
            task,
            map_index,
            "tries",
        ] => {
            let found = state.task_instances.iter().find(|t| {
                t.dag_id == *dag
                    && t.dag_run_id == *run
                    && t.task_id == *task
                    && t.map_index.to_string() == *map_index
            });
            match found {
                Some(ti) => {
                    let tries: Vec<Value> = ti.tries.iter().map(|a| try_json(ti, a)).collect();
                    ResponseTemplate::new(200).set_body_json(
                        json!({ "task_instances": tries, "total_entries": tries.len() }),
                    )
                }
                None => error(404, "The Task Instance was not found"),
            }
        }
        ["api", "v2", "dags", dag, "dagRuns", run] if request.method.as_str() == "GET" => {
            match state
                .runs
                .iter()
                .find(|r| r.dag_id == *dag && r.dag_run_id == *run)
            {
                Some(found) => ResponseTemplate::new(200).set_body_json(run_json(found)),
                None => error(
                    404,
                    &format!("The DagRun with dag_id: `{dag}` and run_id: `{run}` was not found"),
                ),
            }
        }
        ["api", "v2", "dags", dag, "dagRuns"] if request.method.as_str() == "POST" => {
            if !state.dags.contains_key(*dag) {
                return error(404, &format!("DAG with dag_id: '{dag}' not found"));
            }
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            if body.get("logical_date").is_none() {
                return error(422, "Field required: logical_date");
            }
            let run_id = body["dag_run_id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("manual__{}", Utc::now().to_rfc3339()));
            if state
                .runs
                .iter()
                .any(|r| r.dag_id == *dag && r.dag_run_id == run_id)
            {
                return error(409, &format!("DAG Run already exists: {run_id}"));
            }
            let id = state.next_id();
            let run = FakeRun {
                id,
                dag_id: (*dag).to_string(),
                dag_run_id: run_id,
                state: "queued".into(),
                run_type: "manual".into(),
                start_date: None,
                end_date: None,
                updated_at: micros(Utc::now()),
            };
            let json = run_json(&run);
            state.runs.push(run);
            ResponseTemplate::new(200).set_body_json(json)
        }
        _ => error(404, "Not Found"),
    }
}

pub struct FakeAirflow {
    pub server: MockServer,
    pub state: Arc<Mutex<AirflowState>>,
    /// What clients connect to (see [`FakeAirflow::url`]).
    proxy: FaultProxy,
}

impl FakeAirflow {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(AirflowState::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder(state.clone()))
            .mount(&server)
            .await;
        let proxy = FaultProxy::start(*server.address()).await;
        Self {
            server,
            state,
            proxy,
        }
    }

    /// The base URL clients use: through the fault proxy (the mock server itself cannot reset
    /// a connection or send a short body).
    pub fn url(&self) -> String {
        format!("http://{}", self.proxy.addr())
    }

    pub fn with<T>(&self, change: impl FnOnce(&mut AirflowState) -> T) -> T {
        change(&mut self.state.lock().expect("fake airflow state"))
    }
}
