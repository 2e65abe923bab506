//! Deterministic ids for mirrored Airflow objects, so re-syncing the same object always
//! addresses the same item (idempotent syncs, no duplicates).
//!
//! Each id is a UUIDv5 in its parent's namespace: pipeline = v5(connector id, dag_id),
//! run = v5(pipeline id, dag_run_id), task run = v5(run id, "task_id/map_index/try_number").

use uuid::Uuid;

pub fn pipeline_id(connector_id: Uuid, dag_id: &str) -> Uuid {
    Uuid::new_v5(&connector_id, dag_id.as_bytes())
}

pub fn run_id(pipeline_id: Uuid, dag_run_id: &str) -> Uuid {
    Uuid::new_v5(&pipeline_id, dag_run_id.as_bytes())
}

pub fn task_run_id(run_id: Uuid, task_id: &str, map_index: i64, try_number: u32) -> Uuid {
    // `/` cannot occur in an Airflow task id's separator position ambiguously: task ids are
    // `[A-Za-z0-9_.-]` (dots for task groups), so the joined name is unique.
    Uuid::new_v5(
        &run_id,
        format!("{task_id}/{map_index}/{try_number}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let connector = Uuid::from_u128(1);
        let pipeline = pipeline_id(connector, "etl");
        assert_eq!(pipeline, pipeline_id(connector, "etl"));
        assert_ne!(pipeline, pipeline_id(Uuid::from_u128(2), "etl"));
        let run = run_id(pipeline, "scheduled__2026-01-01T00:00:00+00:00");
        assert_ne!(
            task_run_id(run, "load", -1, 1),
            task_run_id(run, "load", -1, 2)
        );
        assert_ne!(
            task_run_id(run, "load", 0, 1),
            task_run_id(run, "load", -1, 1)
        );
    }
}
