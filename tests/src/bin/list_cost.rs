//! `list_cost`: what a pipeline list costs in table requests and bytes read, on a generated
//! embedded store (scripts/bench runs it on its 1,000-pipeline space before serving it).
//!
//! Usage: list_cost <store.redb> <space slug>
//!
//! Prints one JSON object with, for a first list in a fresh process (`cold`), the same list
//! again (`warm`) and a list right after another process wrote to a pipeline on the page
//! (`after_write`): the calls to the table port, the requests DynamoDB would need for them
//! (a batch read is one request per 100 keys) and the bytes of the items read (as DynamoDB
//! sizes them), plus the time each took here.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::{Value, json};
use shared::auth::Caller;
use shared::domain::model::{Criticality, Role};
use shared::repo::Repository;
use shared::service::PageRequest;
use shared::service::pipelines::{self, PipelineFilter};
use shared::store::Table;
use shared::store::counting::CountingTable;
use shared::store::embedded::EmbeddedTable;
use uuid::Uuid;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, store, slug] = args.as_slice() else {
        eprintln!("usage: list_cost <store.redb> <space slug>");
        std::process::exit(2);
    };
    let table: Arc<dyn Table> = Arc::new(EmbeddedTable::open(Path::new(store)).expect("open"));
    let counting = Arc::new(CountingTable::new(table.clone()));
    let repo = Repository::new(counting.clone());
    let space = repo
        .get_space(slug)
        .await
        .expect("read the space")
        .expect("no such space");
    let caller = Caller {
        user_id: Uuid::new_v4(),
        space_id: space.id,
        space_slug: space.slug.clone(),
        role: Role::Viewer,
    };
    let page = PageRequest { page: 1, size: 100 };
    let list = || async {
        counting.take();
        counting.take_read_cost();
        let started = Instant::now();
        let listed = pipelines::list(
            &repo,
            &caller,
            &PipelineFilter::default(),
            7,
            page,
            Utc::now(),
        )
        .await
        .expect("list");
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        let (dynamodb_requests, bytes) = counting.take_read_cost();
        let cost = json!({
            "port_calls": counting.take(),
            "dynamodb_requests": dynamodb_requests,
            "bytes_read": bytes,
            "ms": (millis * 100.0).round() / 100.0,
        });
        (cost, listed)
    };
    let (cold, listed) = list().await;
    let (warm, _) = list().await;
    // Another process (its own repository and cache) changes a pipeline on the page.
    let first = listed.items.first().expect("a pipeline to write to");
    let other = Repository::new(table);
    let criticality = match first.criticality {
        Some(Criticality::High) => Criticality::Low,
        _ => Criticality::High,
    };
    other
        .set_pipeline_governance(
            space.id,
            first.id,
            None,
            Some(Some(criticality)),
            caller.user_id,
            Utc::now(),
        )
        .await
        .expect("write");
    let (after_write, _) = list().await;
    let report: Value = json!({
        "pipelines": listed.total,
        "page_size": page.size,
        "cold": cold,
        "warm": warm,
        "after_write": after_write,
    });
    println!("{report}");
}
