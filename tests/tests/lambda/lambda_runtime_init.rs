//! The functions' init phase and store failures under the Runtime API emulator, as processes
//! (see `orchestration_tests::lambda_emulator`).
//!
//! - A function started without its configuration reports the reason to the Runtime API's
//!   `/runtime/init/error` and exits: the invocation waiting on it fails at once with that
//!   reason instead of hanging until its timeout.
//! - A function whose store cannot be reached (no AWS credentials) answers 503 and logs why.
//!
//! Needs the built binaries and cargo-lambda (no moto: nothing here reaches a store).

use std::time::Duration;

use orchestration_tests::api_gateway::{Answer, event};
use orchestration_tests::aws_recorder::aws_environment;
use orchestration_tests::lambda_emulator::{
    Emulator, FUNCTIONS, FunctionProcess, binary_dir, lambda_environment, log_dir,
};
use orchestration_tests::sam_template;

/// How long a failed init may keep its caller waiting, and a process may take to exit.
const INIT_BOUND: Duration = Duration::from_secs(20);

/// An endpoint nothing listens on: these functions must not get as far as calling it.
const NOWHERE: &str = "http://127.0.0.1:9";

/// A change to a function's environment: `(name, None)` removes the variable,
/// `(name, Some(value))` sets it.
type Change<'a> = (&'a str, Option<&'a str>);

/// A payload the function accepts.
fn payload(function: &str) -> String {
    let name = match function {
        "pipelines" => "pipelines/list-pipelines",
        "runs" => "runs/list-runs",
        "comments" => "comments/list-run-comments",
        "connectors" => "connectors/list-syncs",
        _ => "scheduled-sync/schedule",
    };
    event(name).to_string()
}

/// The environment the template gives `function`, with local AWS settings, then `change`.
fn environment(
    emulator: &Emulator,
    function: &str,
    change: &[Change<'_>],
) -> Vec<(String, String)> {
    let template = sam_template::load_template();
    let mut environment = lambda_environment(emulator, function);
    environment.extend(sam_template::function_environment(
        &template,
        "orchestration",
        function,
    ));
    environment.extend(aws_environment(NOWHERE));
    for (name, value) in change {
        environment.retain(|(k, _)| k != name);
        if let Some(value) = value {
            environment.push((name.to_string(), value.to_string()));
        }
    }
    environment
}

/// Starts `function` misconfigured by `change` with an invocation waiting, and checks that
/// the invocation is answered with an error naming `reason` and that the process exits.
async fn init_fails(function: &str, change: &[Change<'_>], reason: &str) -> Result<(), String> {
    let label = format!("init-{function}-{}", change[0].0.to_lowercase());
    let logs = log_dir(env!("CARGO_TARGET_TMPDIR"), &label);
    // One emulator per case: cargo-lambda answers an init error with the pending invocation
    // of the first function it has seen, so each case needs an emulator of its own.
    let emulator = Emulator::start(&logs, &label).await;
    let environment = environment(&emulator, function, change);
    let payload = payload(function);
    let invocation = emulator.invoke(function, &payload, INIT_BOUND);
    let process = async {
        // The invocation is queued first, as on Lambda (an init runs for an invocation);
        // an init error reported before it would answer nothing.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut process =
            FunctionProcess::start(&binary_dir(), function, &environment, &logs, &label);
        let exit = process.wait_exit(INIT_BOUND).await;
        (process, exit)
    };
    let (answer, (process, exit)) = tokio::join!(invocation, process);
    let log = process.log();
    let mut problems = Vec::new();
    match exit {
        Some(status) if !status.success() => {}
        Some(status) => problems.push(format!("exited with {status}, expected a failure")),
        None => problems.push(format!("still running after {INIT_BOUND:?}")),
    }
    match answer {
        Ok((_, body)) => {
            let body = String::from_utf8_lossy(&body);
            if !body.contains(reason) || !body.contains("errorMessage") {
                problems.push(format!(
                    "the invocation got {body}, not an init error naming {reason}"
                ));
            }
        }
        Err(error) => problems.push(format!("the invocation was not answered: {error}")),
    }
    if !log
        .lines()
        .any(|line| line.contains("ERROR") && line.contains(reason))
    {
        problems.push(format!("no error log line names {reason}"));
    }
    if problems.is_empty() {
        println!("{label}: init failed as it should");
        Ok(())
    } else {
        Err(format!("{label}: {}\nlog:\n{log}", problems.join("; ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_function_fails_init_with_the_reason_and_exits() {
    binary_dir();
    let mut cases: Vec<(&str, Vec<Change<'_>>, &str)> = FUNCTIONS
        .iter()
        .map(|function| (*function, vec![("DYNAMODB_TABLE", None)], "DYNAMODB_TABLE"))
        .collect();
    cases.push(("runs", vec![("AWS_REGION", None)], "AWS_REGION"));
    cases.push((
        "pipelines",
        vec![("ORCHESTRATION_RATE_LIMIT_PER_MINUTE", Some("lots"))],
        "ORCHESTRATION_RATE_LIMIT_PER_MINUTE",
    ));
    let results = futures::future::join_all(
        cases
            .iter()
            .map(|(function, change, reason)| init_fails(function, change, reason)),
    )
    .await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Without credentials every table call fails: the answer is the platform's 503 and the log
/// says why (the request id ties the two together).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_answers_503_and_logs_the_cause() {
    let logs = log_dir(env!("CARGO_TARGET_TMPDIR"), "store-unavailable");
    let emulator = Emulator::start(&logs, "store-unavailable").await;
    let change = [("AWS_ACCESS_KEY_ID", None), ("AWS_SECRET_ACCESS_KEY", None)];
    let environment = environment(&emulator, "pipelines", &change);
    let mut process =
        FunctionProcess::start(&binary_dir(), "pipelines", &environment, &logs, "pipelines");
    let request = event("pipelines/list-pipelines");
    let (status, body) = emulator
        .invoke("pipelines", &request.to_string(), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log()));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = Answer::from_lambda(&body).unwrap();
    assert_eq!(answer.status, 503, "{answer:?}\n{}", process.log());
    process.assert_running();
    let request_id = request["requestContext"]["requestId"].as_str().unwrap();
    let log = process.log();
    let cause = log.lines().find(|line| {
        let lower = line.to_lowercase();
        line.contains(request_id)
            && (line.contains("\"ERROR\"") || line.contains("\"WARN\""))
            && lower.contains("credential")
    });
    assert!(
        cause.is_some(),
        "no error line of request {request_id} names the missing credentials:\n{log}"
    );
}
