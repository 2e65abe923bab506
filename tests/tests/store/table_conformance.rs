//! The storage conformance suite: the same tests against both `Table` adapters (embedded redb and
//! DynamoDB through a local DynamoDB-compatible server). Semantics are DynamoDB's; any difference
//! between the adapters is a bug in one of them.

use std::collections::{BTreeMap, BTreeSet};

use orchestration_tests::{Backend, TestTable, on_both_backends};
use serde_json::{Value, json};
use shared::store::{
    BatchOp, Condition, GSI1_PK, GSI1_SK, Index, Item, Key, MAX_TRANSACTION_OPS, PK, Query, SK,
    SortKey, StoreError, Table, TransactOp, Update, count_all, query_all,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn item(value: Value) -> Item {
    value.as_object().expect("a JSON object").clone()
}

fn key(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

fn str_attr<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("item lacks string {name}: {item:?}"))
}

fn sks(items: &[Item]) -> Vec<String> {
    items.iter().map(|i| str_attr(i, SK).to_string()).collect()
}

fn keys_of(items: &[Item]) -> Vec<Key> {
    items
        .iter()
        .map(|i| Key::of(i).expect("item has a primary key"))
        .collect()
}

async fn put(table: &dyn Table, value: Value) {
    table.put(item(value), None).await.expect("put");
}

async fn get(table: &dyn Table, pk: &str, sk: &str) -> Option<Item> {
    table.get(&key(pk, sk)).await.expect("get")
}

async fn all(table: &dyn Table, query: Query) -> Vec<Item> {
    query_all(table, query).await.expect("query")
}

fn assert_condition_failed<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::ConditionFailed)),
        "{what}: expected ConditionFailed, got {result:?}"
    );
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "{what}: expected Invalid, got {result:?}"
    );
}

/// Follows cursors to exhaustion, checking every page respects the limit. Returns the pages.
async fn pages(table: &dyn Table, mut query: Query) -> Vec<Vec<Item>> {
    let limit = query.limit.expect("a paged query") as usize;
    let mut pages = Vec::new();
    loop {
        let page = table.query(&query).await.expect("query page");
        assert!(
            page.items.len() <= limit,
            "a page of {} items exceeds the limit {limit}",
            page.items.len()
        );
        let next = page.next;
        pages.push(page.items);
        assert!(pages.len() <= 200, "pagination does not terminate");
        match next {
            Some(cursor) => query.start = Some(cursor),
            None => return pages,
        }
    }
}

/// The sort keys used by the sort-key operator tests, in byte order.
const SORTED: [&str; 5] = ["A", "B#1", "B#10", "B#2", "C"];

/// Every sort-key operator with its expected (ascending) result on [`SORTED`].
fn operator_cases() -> Vec<(SortKey, Vec<&'static str>)> {
    let s = |v: &str| v.to_string();
    vec![
        (SortKey::Any, SORTED.to_vec()),
        (SortKey::Equals(s("B#1")), vec!["B#1"]),
        (SortKey::Equals(s("B")), vec![]),
        (SortKey::Equals(s("C")), vec!["C"]),
        (SortKey::BeginsWith(s("B#")), vec!["B#1", "B#10", "B#2"]),
        (SortKey::BeginsWith(s("B#1")), vec!["B#1", "B#10"]),
        (SortKey::BeginsWith(s("B#10")), vec!["B#10"]),
        (SortKey::BeginsWith(s("A")), vec!["A"]),
        (SortKey::BeginsWith(s("D")), vec![]),
        (
            SortKey::Between(s("B#1"), s("B#2")),
            vec!["B#1", "B#10", "B#2"],
        ),
        (SortKey::Between(s("B"), s("B#10")), vec!["B#1", "B#10"]),
        (SortKey::Between(s("A"), s("A")), vec!["A"]),
        (SortKey::Between(s("A0"), s("B#0")), vec![]),
        (SortKey::Between(s("0"), s("Z")), SORTED.to_vec()),
        (SortKey::LessThan(s("B#10")), vec!["A", "B#1"]),
        (SortKey::LessThan(s("A")), vec![]),
        (SortKey::LessOrEqual(s("B#10")), vec!["A", "B#1", "B#10"]),
        (SortKey::LessOrEqual(s("B")), vec!["A"]),
        (SortKey::GreaterThan(s("B#10")), vec!["B#2", "C"]),
        (
            SortKey::GreaterThan(s("B")),
            vec!["B#1", "B#10", "B#2", "C"],
        ),
        (SortKey::GreaterThan(s("C")), vec![]),
        (SortKey::GreaterOrEqual(s("B#10")), vec!["B#10", "B#2", "C"]),
        (SortKey::GreaterOrEqual(s("C")), vec!["C"]),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. put / get
// ---------------------------------------------------------------------------------------------

async fn put_get_round_trips_nested_values(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    let stored = item(json!({
        "PK": "RT#1",
        "SK": "META",
        "name": "ünïcödé ✓ \"quoted\"",
        "empty_string": "",
        "int": 42,
        "negative": -17,
        "big": 1_234_567_890_123_i64,
        "zero": 0,
        // Non-integral on purpose: DynamoDB numbers are decimals, so 2.0 reads back as 2.
        "float": 1.5,
        "negative_float": -0.25,
        "yes": true,
        "no": false,
        "list": [1, "two", 3.5, false, ["nested", 2], {"k": "v"}],
        "empty_list": [],
        "object": {
            "inner": {"deep": [{"x": 1}, {"y": "z"}]},
            "flag": true,
            "n": 7
        },
        "empty_object": {}
    }));
    table.put(stored.clone(), None).await.expect("put");

    let read = get(table, "RT#1", "META")
        .await
        .expect("the item was stored");
    assert_eq!(read, stored);

    // A second item in the same partition is a different item; the first is untouched.
    put(table, json!({"PK": "RT#1", "SK": "OTHER", "int": 1})).await;
    assert_eq!(get(table, "RT#1", "META").await, Some(stored.clone()));
    assert_eq!(
        get(table, "RT#1", "OTHER").await,
        Some(item(json!({"PK": "RT#1", "SK": "OTHER", "int": 1})))
    );

    // A put replaces the whole item (attributes not in the new item are gone).
    put(table, json!({"PK": "RT#1", "SK": "META", "only": "this"})).await;
    assert_eq!(
        get(table, "RT#1", "META").await,
        Some(item(json!({"PK": "RT#1", "SK": "META", "only": "this"})))
    );

    // Missing keys: other sort key, other partition, prefix of an existing partition / sort key.
    assert_eq!(get(table, "RT#1", "MISSING").await, None);
    assert_eq!(get(table, "RT#2", "META").await, None);
    assert_eq!(get(table, "RT#", "META").await, None);
    assert_eq!(get(table, "RT#1", "MET").await, None);
}

// ---------------------------------------------------------------------------------------------
// 2. conditional put
// ---------------------------------------------------------------------------------------------

async fn conditional_put(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    // Create-once.
    let first = item(json!({"PK": "CP#1", "SK": "A", "v": "first"}));
    table
        .put(first.clone(), Some(Condition::NotExists))
        .await
        .expect("the first create succeeds");
    let second = table
        .put(
            item(json!({"PK": "CP#1", "SK": "A", "v": "second"})),
            Some(Condition::NotExists),
        )
        .await;
    assert_condition_failed(second, "second create");
    assert_eq!(get(table, "CP#1", "A").await, Some(first.clone()));
    // NotExists is per item, not per partition.
    table
        .put(
            item(json!({"PK": "CP#1", "SK": "B"})),
            Some(Condition::NotExists),
        )
        .await
        .expect("another sort key in the same partition is another item");

    // Exists: replacing a missing item fails and creates nothing.
    let missing = table
        .put(
            item(json!({"PK": "CP#1", "SK": "C"})),
            Some(Condition::Exists),
        )
        .await;
    assert_condition_failed(missing, "put with Exists on a missing item");
    assert_eq!(get(table, "CP#1", "C").await, None);
    table
        .put(
            item(json!({"PK": "CP#1", "SK": "A", "v": "replaced"})),
            Some(Condition::Exists),
        )
        .await
        .expect("Exists holds on a stored item");

    // Optimistic concurrency on a version attribute.
    put(
        table,
        json!({"PK": "CP#2", "SK": "DOC", "version": 1, "body": "v1"}),
    )
    .await;
    table
        .put(
            item(json!({"PK": "CP#2", "SK": "DOC", "version": 2, "body": "v2"})),
            Some(Condition::equals("version", 1)),
        )
        .await
        .expect("the expected version matches");
    let stale = table
        .put(
            item(json!({"PK": "CP#2", "SK": "DOC", "version": 2, "body": "lost update"})),
            Some(Condition::equals("version", 1)),
        )
        .await;
    assert_condition_failed(stale, "stale version");
    let wrong_type = table
        .put(
            item(json!({"PK": "CP#2", "SK": "DOC", "version": 3, "body": "type"})),
            Some(Condition::equals("version", "2")),
        )
        .await;
    assert_condition_failed(wrong_type, "a string never equals a number");
    let missing_attribute = table
        .put(
            item(json!({"PK": "CP#2", "SK": "DOC", "version": 3})),
            Some(Condition::equals("revision", 2)),
        )
        .await;
    assert_condition_failed(missing_attribute, "Equals on a missing attribute");
    let on_missing_item = table
        .put(
            item(json!({"PK": "CP#2", "SK": "OTHER", "version": 1})),
            Some(Condition::equals("version", 0)),
        )
        .await;
    assert_condition_failed(on_missing_item, "Equals on a missing item");
    assert_eq!(get(table, "CP#2", "OTHER").await, None);
    assert_eq!(
        get(table, "CP#2", "DOC").await,
        Some(item(
            json!({"PK": "CP#2", "SK": "DOC", "version": 2, "body": "v2"})
        ))
    );
    table
        .put(
            item(json!({"PK": "CP#2", "SK": "DOC", "version": 3, "body": "v3"})),
            Some(Condition::equals("body", "v2")),
        )
        .await
        .expect("Equals on a string attribute");

    // A lease: take it if nobody holds it or the current lease has expired.
    let take = |now: i64| {
        Condition::Or(vec![
            Condition::NotExists,
            Condition::LessThan("lease_until".into(), json!(now)),
        ])
    };
    let lease = |owner: &str, until: i64| {
        item(json!({"PK": "LEASE#1", "SK": "LEASE", "owner": owner, "lease_until": until}))
    };
    table
        .put(lease("a", 100), Some(take(50)))
        .await
        .expect("a free lease is taken");
    assert_condition_failed(
        table.put(lease("b", 180), Some(take(80))).await,
        "a held lease",
    );
    assert_condition_failed(
        table.put(lease("b", 200), Some(take(100))).await,
        "LessThan is strict",
    );
    assert_eq!(get(table, "LEASE#1", "LEASE").await, Some(lease("a", 100)));
    table
        .put(lease("b", 250), Some(take(150)))
        .await
        .expect("an expired lease is taken over");
    assert_eq!(get(table, "LEASE#1", "LEASE").await, Some(lease("b", 250)));
    // LessThan on strings compares bytewise; on a missing attribute it is false.
    put(
        table,
        json!({"PK": "LEASE#2", "SK": "LEASE", "at": "2024-05-01T00:00:00Z"}),
    )
    .await;
    assert_condition_failed(
        table
            .put(
                item(json!({"PK": "LEASE#2", "SK": "LEASE", "at": "x"})),
                Some(Condition::LessThan(
                    "at".into(),
                    json!("2024-04-30T23:59:59Z"),
                )),
            )
            .await,
        "later timestamp string",
    );
    assert_condition_failed(
        table
            .put(
                item(json!({"PK": "LEASE#2", "SK": "LEASE", "at": "x"})),
                Some(Condition::LessThan("missing".into(), json!(1))),
            )
            .await,
        "LessThan on a missing attribute",
    );
    table
        .put(
            item(json!({"PK": "LEASE#2", "SK": "LEASE", "at": "2024-06-01T00:00:00Z"})),
            Some(Condition::LessThan(
                "at".into(),
                json!("2024-05-01T00:00:01Z"),
            )),
        )
        .await
        .expect("earlier timestamp string");

    // And / AttributeNotExists.
    put(
        table,
        json!({"PK": "CP#3", "SK": "A", "owner": "x", "count": 5}),
    )
    .await;
    let guarded = |extra: Condition| {
        Condition::And(vec![
            Condition::Exists,
            Condition::equals("owner", "x"),
            extra,
        ])
    };
    assert_condition_failed(
        table
            .put(
                item(json!({"PK": "CP#3", "SK": "A", "owner": "y"})),
                Some(guarded(Condition::AttributeNotExists("count".into()))),
            )
            .await,
        "And with one false member",
    );
    assert_condition_failed(
        table
            .put(
                item(json!({"PK": "CP#3", "SK": "A", "owner": "y"})),
                Some(Condition::And(vec![
                    Condition::equals("owner", "y"),
                    Condition::AttributeNotExists("revoked".into()),
                ])),
            )
            .await,
        "And with the first member false",
    );
    assert_eq!(
        get(table, "CP#3", "A").await,
        Some(item(
            json!({"PK": "CP#3", "SK": "A", "owner": "x", "count": 5})
        ))
    );
    table
        .put(
            item(json!({"PK": "CP#3", "SK": "A", "owner": "y"})),
            Some(guarded(Condition::AttributeNotExists("revoked".into()))),
        )
        .await
        .expect("every member of And holds");
    assert_condition_failed(
        table
            .put(
                item(json!({"PK": "CP#3", "SK": "A", "owner": "z"})),
                Some(Condition::Or(vec![
                    Condition::NotExists,
                    Condition::equals("owner", "x"),
                    Condition::LessThan("count".into(), json!(10)),
                ])),
            )
            .await,
        "Or with no true member (count is gone)",
    );
    assert_eq!(
        get(table, "CP#3", "A").await,
        Some(item(json!({"PK": "CP#3", "SK": "A", "owner": "y"})))
    );
}

// ---------------------------------------------------------------------------------------------
// 3. update
// ---------------------------------------------------------------------------------------------

async fn update_set_remove_add(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    let k = key("UP#1", "A");

    // Upsert: a missing item is created; a missing counter starts at 0.
    let created = table
        .update(&k, Update::new().set("name", "first").add("count", 3), None)
        .await
        .expect("update of a missing item creates it");
    let expected = item(json!({"PK": "UP#1", "SK": "A", "name": "first", "count": 3}));
    assert_eq!(created, expected);
    assert_eq!(table.get(&k).await.unwrap(), Some(expected));

    // Set (including nested values), remove, add — the returned item is the stored one.
    let updated = table
        .update(
            &k,
            Update::new()
                .set("nested", json!({"a": [1, {"b": true}], "c": 2.5}))
                .set("name", "second")
                .remove("absent_attribute")
                .add("count", 4)
                .add("other", -2),
            None,
        )
        .await
        .expect("update");
    let expected = item(json!({
        "PK": "UP#1", "SK": "A", "name": "second", "count": 7, "other": -2,
        "nested": {"a": [1, {"b": true}], "c": 2.5}
    }));
    assert_eq!(updated, expected);
    assert_eq!(table.get(&k).await.unwrap(), Some(expected));

    let updated = table
        .update(
            &k,
            Update::new()
                .remove("nested")
                .remove("name")
                .add("count", -10),
            None,
        )
        .await
        .expect("update");
    let expected = item(json!({"PK": "UP#1", "SK": "A", "count": -3, "other": -2}));
    assert_eq!(updated, expected);
    assert_eq!(table.get(&k).await.unwrap(), Some(expected.clone()));

    // set_or_remove: null removes.
    let updated = table
        .update(
            &k,
            Update::new()
                .set_or_remove("other", Value::Null)
                .set_or_remove("label", "x"),
            None,
        )
        .await
        .expect("update");
    let expected = item(json!({"PK": "UP#1", "SK": "A", "count": -3, "label": "x"}));
    assert_eq!(updated, expected);

    // Conditional updates.
    let failed = table
        .update(
            &k,
            Update::new().set("label", "y").add("count", 1),
            Some(Condition::equals("count", 100)),
        )
        .await;
    assert_condition_failed(failed, "update with a false condition");
    assert_eq!(table.get(&k).await.unwrap(), Some(expected.clone()));
    let updated = table
        .update(
            &k,
            Update::new().set("label", "y").add("count", 1),
            Some(Condition::And(vec![
                Condition::equals("count", -3),
                Condition::AttributeNotExists("other".into()),
            ])),
        )
        .await
        .expect("update with a true condition");
    assert_eq!(
        updated,
        item(json!({"PK": "UP#1", "SK": "A", "count": -2, "label": "y"}))
    );

    // Exists prevents the upsert; NotExists allows only the upsert.
    let missing = key("UP#1", "B");
    assert_condition_failed(
        table
            .update(&missing, Update::new().set("x", 1), Some(Condition::Exists))
            .await,
        "update with Exists on a missing item",
    );
    assert_eq!(table.get(&missing).await.unwrap(), None);
    let created = table
        .update(
            &missing,
            Update::new().add("n", 1),
            Some(Condition::NotExists),
        )
        .await
        .expect("update with NotExists on a missing item");
    assert_eq!(created, item(json!({"PK": "UP#1", "SK": "B", "n": 1})));
    assert_condition_failed(
        table
            .update(
                &missing,
                Update::new().add("n", 1),
                Some(Condition::NotExists),
            )
            .await,
        "update with NotExists on an existing item",
    );
    assert_eq!(
        table.get(&missing).await.unwrap(),
        Some(item(json!({"PK": "UP#1", "SK": "B", "n": 1})))
    );

    // ADD on a non-integral number adds (DynamoDB numbers are decimals).
    put(
        table,
        json!({"PK": "UP#2", "SK": "F", "ratio": 1.5, "count": 10}),
    )
    .await;
    let updated = table
        .update(
            &key("UP#2", "F"),
            Update::new().add("ratio", 2).add("count", -10),
            None,
        )
        .await
        .expect("update");
    let expected = item(json!({"PK": "UP#2", "SK": "F", "ratio": 3.5, "count": 0}));
    assert_eq!(updated, expected);
    assert_eq!(get(table, "UP#2", "F").await, Some(expected));
}

async fn update_maintains_gsi1(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    let k = key("UG#1", "A");
    let in_index = |partition: &str| all(table, Query::partition(Index::Gsi1, partition));

    put(table, json!({"PK": "UG#1", "SK": "A", "data": 1})).await;
    assert!(in_index("IDX#1").await.is_empty());

    // Setting both index attributes indexes the item.
    table
        .update(
            &k,
            Update::new().set(GSI1_PK, "IDX#1").set(GSI1_SK, "k#1"),
            None,
        )
        .await
        .expect("update");
    let found = in_index("IDX#1").await;
    assert_eq!(
        found,
        vec![item(json!({
            "PK": "UG#1", "SK": "A", "data": 1, "GSI1PK": "IDX#1", "GSI1SK": "k#1"
        }))]
    );

    // Changing GSI1SK moves the entry (no stale entry under the old sort key).
    table
        .update(&k, Update::new().set(GSI1_SK, "k#2").add("data", 1), None)
        .await
        .expect("update");
    let found = in_index("IDX#1").await;
    assert_eq!(keys_of(&found), vec![k.clone()]);
    assert_eq!(str_attr(&found[0], GSI1_SK), "k#2");
    assert_eq!(found[0]["data"], json!(2));
    let q = Query::partition(Index::Gsi1, "IDX#1");
    assert!(
        all(table, q.clone().sort(SortKey::Equals("k#1".into())))
            .await
            .is_empty()
    );
    assert_eq!(
        keys_of(&all(table, q.clone().sort(SortKey::Equals("k#2".into()))).await),
        vec![k.clone()]
    );

    // Changing GSI1PK moves it to another index partition.
    table
        .update(&k, Update::new().set(GSI1_PK, "IDX#2"), None)
        .await
        .expect("update");
    assert!(in_index("IDX#1").await.is_empty());
    assert_eq!(keys_of(&in_index("IDX#2").await), vec![k.clone()]);

    // Removing one of the two attributes takes it out (the index is sparse).
    let updated = table
        .update(&k, Update::new().remove(GSI1_SK), None)
        .await
        .expect("update");
    assert_eq!(
        updated,
        item(json!({"PK": "UG#1", "SK": "A", "data": 2, "GSI1PK": "IDX#2"}))
    );
    assert!(in_index("IDX#2").await.is_empty());
    table
        .update(&k, Update::new().set(GSI1_SK, "k#3"), None)
        .await
        .expect("update");
    assert_eq!(keys_of(&in_index("IDX#2").await), vec![k.clone()]);
    table
        .update(&k, Update::new().remove(GSI1_PK).remove(GSI1_SK), None)
        .await
        .expect("update");
    assert!(in_index("IDX#2").await.is_empty());

    // An upsert can create an indexed item; a put without the attributes de-indexes it;
    // a delete removes the index entry.
    let k2 = key("UG#2", "B");
    table
        .update(
            &k2,
            Update::new().set(GSI1_PK, "IDX#3").set(GSI1_SK, "s"),
            None,
        )
        .await
        .expect("upsert");
    assert_eq!(keys_of(&in_index("IDX#3").await), vec![k2.clone()]);
    put(table, json!({"PK": "UG#2", "SK": "B", "plain": true})).await;
    assert!(in_index("IDX#3").await.is_empty());
    table
        .update(
            &k2,
            Update::new().set(GSI1_PK, "IDX#3").set(GSI1_SK, "s"),
            None,
        )
        .await
        .expect("update");
    assert_eq!(keys_of(&in_index("IDX#3").await), vec![k2.clone()]);
    table.delete(&k2, None).await.expect("delete");
    assert!(in_index("IDX#3").await.is_empty());

    // A failed conditional update does not touch the index either.
    table
        .update(
            &k,
            Update::new().set(GSI1_PK, "IDX#4").set(GSI1_SK, "a"),
            None,
        )
        .await
        .expect("update");
    assert_condition_failed(
        table
            .update(
                &k,
                Update::new().set(GSI1_SK, "b"),
                Some(Condition::equals("data", 99)),
            )
            .await,
        "conditional index move",
    );
    let found = in_index("IDX#4").await;
    assert_eq!(keys_of(&found), vec![k.clone()]);
    assert_eq!(str_attr(&found[0], GSI1_SK), "a");
}

/// Updates and conditions DynamoDB refuses are refused by both adapters, and change nothing.
async fn invalid_updates_and_conditions_are_rejected(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    let original = item(json!({
        "PK": "IU#1", "SK": "A", "name": "x", "count": 1, "GSI1PK": "IUIDX", "GSI1SK": "a"
    }));
    table.put(original.clone(), None).await.expect("put");
    let k = key("IU#1", "A");
    let missing = key("IU#1", "B");
    let unchanged = || async {
        assert_eq!(
            all(table, Query::partition(Index::Primary, "IU#1")).await,
            vec![original.clone()]
        );
        assert_eq!(
            all(table, Query::partition(Index::Gsi1, "IUIDX")).await,
            vec![original.clone()]
        );
    };

    let invalid_anywhere: Vec<(&str, Update)> = vec![
        ("empty update", Update::new()),
        ("set PK", Update::new().set(PK, "other")),
        ("set SK", Update::new().set(SK, "other")),
        ("remove SK", Update::new().remove(SK)),
        ("empty GSI1PK", Update::new().set(GSI1_PK, "")),
        ("numeric GSI1SK", Update::new().set(GSI1_SK, 5)),
        ("GSI1PK with NUL", Update::new().set(GSI1_PK, "a\0b")),
        ("null GSI1SK", Update::new().set(GSI1_SK, Value::Null)),
        ("add to GSI1SK", Update::new().add(GSI1_SK, 1)),
        (
            "set and remove",
            Update::new().set("name", "y").remove("name"),
        ),
        ("set and add", Update::new().set("count", 5).add("count", 1)),
        ("add twice", Update::new().add("count", 1).add("count", 1)),
        ("set twice", Update::new().set("name", "y").set("name", "z")),
    ];
    for (what, update) in invalid_anywhere {
        assert_invalid(table.update(&k, update.clone(), None).await, what);
        assert_invalid(
            table.update(&missing, update.clone(), None).await,
            &format!("{what} (upsert)"),
        );
        assert_invalid(
            table
                .transact_write(vec![TransactOp::Update {
                    key: k.clone(),
                    update,
                    condition: None,
                }])
                .await,
            &format!("{what} (in a transaction)"),
        );
        unchanged().await;
    }
    // ADD works on numbers only.
    assert_invalid(
        table.update(&k, Update::new().add("name", 1), None).await,
        "add to a string",
    );
    unchanged().await;

    // Empty condition groups cannot be expressed in DynamoDB.
    for condition in [
        Condition::And(vec![]),
        Condition::Or(vec![]),
        Condition::And(vec![Condition::Exists, Condition::Or(vec![])]),
    ] {
        let what = format!("{condition:?}");
        assert_invalid(
            table
                .put(
                    item(json!({"PK": "IU#1", "SK": "B"})),
                    Some(condition.clone()),
                )
                .await,
            &what,
        );
        assert_invalid(
            table
                .update(&k, Update::new().set("name", "y"), Some(condition.clone()))
                .await,
            &what,
        );
        assert_invalid(table.delete(&k, Some(condition.clone())).await, &what);
        assert_invalid(
            table
                .transact_write(vec![TransactOp::Check {
                    key: k.clone(),
                    condition,
                }])
                .await,
            &what,
        );
        unchanged().await;
    }
}

// ---------------------------------------------------------------------------------------------
// 4. delete
// ---------------------------------------------------------------------------------------------

async fn delete_semantics(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    table
        .delete(&key("DEL#1", "missing"), None)
        .await
        .expect("deleting a missing item is not an error");
    assert_condition_failed(
        table
            .delete(&key("DEL#1", "missing"), Some(Condition::Exists))
            .await,
        "conditional delete of a missing item",
    );

    put(table, json!({"PK": "DEL#1", "SK": "A", "version": 1})).await;
    put(table, json!({"PK": "DEL#1", "SK": "B", "version": 1})).await;
    assert_condition_failed(
        table
            .delete(&key("DEL#1", "A"), Some(Condition::equals("version", 2)))
            .await,
        "delete with a stale version",
    );
    assert_condition_failed(
        table
            .delete(&key("DEL#1", "A"), Some(Condition::NotExists))
            .await,
        "delete with NotExists of a stored item",
    );
    assert_eq!(
        get(table, "DEL#1", "A").await,
        Some(item(json!({"PK": "DEL#1", "SK": "A", "version": 1})))
    );
    table
        .delete(&key("DEL#1", "A"), Some(Condition::equals("version", 1)))
        .await
        .expect("delete with the current version");
    assert_eq!(get(table, "DEL#1", "A").await, None);
    // Only that item went.
    assert_eq!(
        get(table, "DEL#1", "B").await,
        Some(item(json!({"PK": "DEL#1", "SK": "B", "version": 1})))
    );
    table
        .delete(&key("DEL#1", "B"), Some(Condition::Exists))
        .await
        .expect("delete with Exists");
    assert!(
        all(table, Query::partition(Index::Primary, "DEL#1"))
            .await
            .is_empty()
    );
    // Deleting again: unconditional is fine, conditional fails.
    table
        .delete(&key("DEL#1", "B"), None)
        .await
        .expect("delete twice");
    assert_condition_failed(
        table
            .delete(&key("DEL#1", "B"), Some(Condition::Exists))
            .await,
        "conditional delete of a deleted item",
    );
}

// ---------------------------------------------------------------------------------------------
// 5. query on the primary index
// ---------------------------------------------------------------------------------------------

async fn query_primary_sort_key_operators(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    // Written out of order; neighbours that must never leak in.
    let mut ops = Vec::new();
    for sk in ["C", "B#10", "A", "B#2", "B#1"] {
        ops.push(BatchOp::Put(item(
            json!({"PK": "P1", "SK": sk, "in": "P1"}),
        )));
        ops.push(BatchOp::Put(item(
            json!({"PK": "P10", "SK": sk, "in": "P10"}),
        )));
    }
    for (pk, sk) in [
        ("P", "B#1"),
        ("P1#", "B#1"),
        ("P2", "A"),
        ("p1", "A"),
        ("Q1", "B#1"),
    ] {
        ops.push(BatchOp::Put(item(json!({"PK": pk, "SK": sk, "in": pk}))));
    }
    // GSI attributes on an item in another partition must not make it a primary result.
    ops.push(BatchOp::Put(item(json!({
        "PK": "X", "SK": "A", "GSI1PK": "P1", "GSI1SK": "A"
    }))));
    table.batch_write(ops).await.expect("batch write");

    for (sort, expected) in operator_cases() {
        let ascending = all(
            table,
            Query::partition(Index::Primary, "P1").sort(sort.clone()),
        )
        .await;
        assert_eq!(sks(&ascending), expected, "ascending {sort:?}");
        assert!(
            ascending
                .iter()
                .all(|i| i["PK"] == json!("P1") && i["in"] == json!("P1")),
            "{sort:?} leaked another partition: {ascending:?}"
        );
        let descending = all(
            table,
            Query::partition(Index::Primary, "P1")
                .sort(sort.clone())
                .descending(),
        )
        .await;
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(sks(&descending), reversed, "descending {sort:?}");
        // A count matches the query's items, whatever its limit or direction.
        for query in [
            Query::partition(Index::Primary, "P1").sort(sort.clone()),
            Query::partition(Index::Primary, "P1")
                .sort(sort.clone())
                .descending()
                .limit(1),
        ] {
            let counted = count_all(table, query).await.expect("count");
            assert_eq!(counted, expected.len() as u64, "count {sort:?}");
        }
        // A single query without a limit returns everything in one page.
        let page = table
            .query(&Query::partition(Index::Primary, "P1").sort(sort.clone()))
            .await
            .expect("query");
        assert_eq!(sks(&page.items), expected, "single page {sort:?}");
        assert!(
            page.next.is_none(),
            "no cursor for a complete page ({sort:?})"
        );
    }

    // Whole items come back.
    let items = all(table, Query::partition(Index::Primary, "P10")).await;
    assert_eq!(sks(&items), SORTED.to_vec());
    assert_eq!(items[0], item(json!({"PK": "P10", "SK": "A", "in": "P10"})));
    let items = all(table, Query::partition(Index::Primary, "P")).await;
    assert_eq!(keys_of(&items), vec![key("P", "B#1")]);
    assert!(
        all(table, Query::partition(Index::Primary, "P3"))
            .await
            .is_empty()
    );
    assert!(
        all(table, Query::partition(Index::Primary, "P1 "))
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. pagination
// ---------------------------------------------------------------------------------------------

async fn query_pagination(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    // Primary: 23 items, plus neighbours.
    let expected: Vec<String> = (0..23).map(|i| format!("item#{i:02}")).collect();
    let mut ops: Vec<BatchOp> = expected
        .iter()
        .map(|sk| BatchOp::Put(item(json!({"PK": "PG#1", "SK": sk}))))
        .collect();
    ops.push(BatchOp::Put(item(json!({"PK": "PG#10", "SK": "item#00"}))));
    ops.push(BatchOp::Put(item(json!({"PK": "PG#", "SK": "item#00"}))));

    // GSI1: 5 sort key values with 4 items each (ties), across two base partitions, plus items
    // in another index partition and unindexed ones.
    let mut gsi_expected: Vec<(String, Key)> = Vec::new();
    for i in 0..20 {
        let pk = if i % 2 == 0 { "GP#a" } else { "GP#b" };
        let sk = format!("s#{i:02}");
        let gsk = format!("g#{}", (19 - i) / 4);
        ops.push(BatchOp::Put(item(json!({
            "PK": pk, "SK": sk, "GSI1PK": "GIDX", "GSI1SK": gsk
        }))));
        gsi_expected.push((gsk, key(pk, &sk)));
    }
    ops.push(BatchOp::Put(item(json!({
        "PK": "GP#c", "SK": "x", "GSI1PK": "GIDX2", "GSI1SK": "g#1"
    }))));
    ops.push(BatchOp::Put(item(
        json!({"PK": "GP#c", "SK": "y", "GSI1PK": "GIDX"}),
    )));
    ops.push(BatchOp::Put(item(
        json!({"PK": "GP#c", "SK": "z", "GSI1SK": "g#1"}),
    )));
    table.batch_write(ops).await.expect("batch write");

    for limit in [1, 4, 5, 7, 23, 50] {
        let forward = pages(table, Query::partition(Index::Primary, "PG#1").limit(limit)).await;
        assert!(
            forward.len() >= 23usize.div_ceil(limit as usize),
            "limit {limit}: {} pages",
            forward.len()
        );
        // Every page but possibly the last (which may be empty on DynamoDB) is full.
        for page in &forward[..forward.len() - 1] {
            assert!(
                !page.is_empty(),
                "an empty page before the end (limit {limit})"
            );
        }
        let flat: Vec<Item> = forward.concat();
        assert_eq!(sks(&flat), expected, "forward, limit {limit}");

        let backward = pages(
            table,
            Query::partition(Index::Primary, "PG#1")
                .limit(limit)
                .descending(),
        )
        .await;
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(sks(&backward.concat()), reversed, "backward, limit {limit}");
    }

    // With a sort-key condition, both directions.
    let between = Query::partition(Index::Primary, "PG#1")
        .sort(SortKey::Between("item#05".into(), "item#16".into()))
        .limit(3);
    let want: Vec<String> = expected[5..=16].to_vec();
    assert_eq!(sks(&pages(table, between.clone()).await.concat()), want);
    let mut want_rev = want.clone();
    want_rev.reverse();
    assert_eq!(
        sks(&pages(table, between.descending()).await.concat()),
        want_rev
    );
    let begins = Query::partition(Index::Primary, "PG#1")
        .sort(SortKey::BeginsWith("item#1".into()))
        .limit(4);
    assert_eq!(
        sks(&pages(table, begins.clone()).await.concat()),
        expected[10..20].to_vec()
    );
    let greater = Query::partition(Index::Primary, "PG#1")
        .sort(SortKey::GreaterThan("item#20".into()))
        .limit(1)
        .descending();
    assert_eq!(
        sks(&pages(table, greater).await.concat()),
        vec!["item#22", "item#21"]
    );

    // GSI1, ties included.
    let mut sorted = gsi_expected.clone();
    sorted.sort();
    let want_keys: BTreeSet<Key> = sorted.iter().map(|(_, k)| k.clone()).collect();
    for limit in [1, 3, 4, 6, 20, 25] {
        for forward in [true, false] {
            let mut query = Query::partition(Index::Gsi1, "GIDX").limit(limit);
            if !forward {
                query = query.descending();
            }
            let flat = pages(table, query).await.concat();
            assert_eq!(flat.len(), 20, "limit {limit}, forward {forward}: {flat:?}");
            let got: BTreeSet<Key> = keys_of(&flat).into_iter().collect();
            assert_eq!(got, want_keys, "every item exactly once (limit {limit})");
            let gsks: Vec<&str> = flat.iter().map(|i| str_attr(i, GSI1_SK)).collect();
            let mut ordered = gsks.clone();
            ordered.sort();
            if !forward {
                ordered.reverse();
            }
            assert_eq!(
                gsks, ordered,
                "GSI1SK order (limit {limit}, forward {forward})"
            );
            assert!(flat.iter().all(|i| i[GSI1_PK] == json!("GIDX")));
        }
    }
    // GSI1 with a sort condition spanning ties.
    let q = Query::partition(Index::Gsi1, "GIDX")
        .sort(SortKey::Between("g#1".into(), "g#3".into()))
        .limit(5);
    let flat = pages(table, q.clone()).await.concat();
    let got: BTreeSet<Key> = keys_of(&flat).into_iter().collect();
    let want: BTreeSet<Key> = gsi_expected
        .iter()
        .filter(|(g, _)| ("g#1".."g#4").contains(&g.as_str()))
        .map(|(_, k)| k.clone())
        .collect();
    assert_eq!(want.len(), 12);
    assert_eq!(flat.len(), 12);
    assert_eq!(got, want);
    let flat = pages(table, q.descending()).await.concat();
    assert_eq!(flat.len(), 12);
    assert_eq!(keys_of(&flat).into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(str_attr(&flat[0], GSI1_SK), "g#3");
    assert_eq!(str_attr(&flat[11], GSI1_SK), "g#1");

    // No matches: an empty page and no cursor.
    for query in [
        Query::partition(Index::Primary, "PG#nothing"),
        Query::partition(Index::Primary, "PG#nothing").limit(5),
        Query::partition(Index::Primary, "PG#1")
            .sort(SortKey::BeginsWith("nope".into()))
            .limit(5),
        Query::partition(Index::Primary, "PG#1")
            .sort(SortKey::GreaterThan("item#22".into()))
            .limit(2)
            .descending(),
        Query::partition(Index::Gsi1, "GIDX#nothing").limit(5),
        Query::partition(Index::Gsi1, "GIDX").sort(SortKey::LessThan("g#0".into())),
    ] {
        let page = table.query(&query).await.expect("query");
        assert!(page.items.is_empty(), "{query:?} returned {:?}", page.items);
        assert!(page.next.is_none(), "{query:?} returned a cursor");
    }
}

// ---------------------------------------------------------------------------------------------
// 7. GSI1 queries
// ---------------------------------------------------------------------------------------------

async fn gsi1_query_sparse_and_sort_operators(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    let mut ops = Vec::new();
    // Indexed under "G", with base keys whose order differs from the index order.
    for (i, gsk) in ["C", "B#10", "A", "B#2", "B#1"].iter().enumerate() {
        ops.push(BatchOp::Put(item(json!({
            "PK": format!("IT#{i}"), "SK": "META", "GSI1PK": "G", "GSI1SK": gsk,
            "payload": {"n": i}
        }))));
    }
    // Not indexed: missing one or both attributes.
    ops.push(BatchOp::Put(item(
        json!({"PK": "IT#5", "SK": "META", "GSI1PK": "G"}),
    )));
    ops.push(BatchOp::Put(item(
        json!({"PK": "IT#6", "SK": "META", "GSI1SK": "B#1"}),
    )));
    ops.push(BatchOp::Put(item(
        json!({"PK": "IT#7", "SK": "META", "other": "G"}),
    )));
    // Other index partitions, including one the "G" partition is a prefix of.
    ops.push(BatchOp::Put(item(json!({
        "PK": "IT#8", "SK": "META", "GSI1PK": "G1", "GSI1SK": "A"
    }))));
    ops.push(BatchOp::Put(item(json!({
        "PK": "IT#9", "SK": "META", "GSI1PK": "H", "GSI1SK": "B#1"
    }))));
    // A base item whose PK is the index partition name must not appear in the index.
    ops.push(BatchOp::Put(item(json!({"PK": "G", "SK": "A"}))));
    table.batch_write(ops).await.expect("batch write");

    let gsks = |items: &[Item]| -> Vec<String> {
        items
            .iter()
            .map(|i| str_attr(i, GSI1_SK).to_string())
            .collect()
    };
    for (sort, expected) in operator_cases() {
        let found = all(table, Query::partition(Index::Gsi1, "G").sort(sort.clone())).await;
        assert_eq!(gsks(&found), expected, "ascending {sort:?}");
        assert!(found.iter().all(|i| i[GSI1_PK] == json!("G")), "{found:?}");
        let descending = all(
            table,
            Query::partition(Index::Gsi1, "G")
                .sort(sort.clone())
                .descending(),
        )
        .await;
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(gsks(&descending), reversed, "descending {sort:?}");
        let counted = count_all(
            table,
            Query::partition(Index::Gsi1, "G")
                .sort(sort.clone())
                .limit(2),
        )
        .await
        .expect("count");
        assert_eq!(counted, expected.len() as u64, "count {sort:?}");
    }
    // Counts see neither unindexed items nor other index partitions.
    for (partition, expected) in [("G1", 1), ("H", 1), ("IT#5", 0), ("G2", 0)] {
        let counted = count_all(table, Query::partition(Index::Gsi1, partition))
            .await
            .expect("count");
        assert_eq!(counted, expected, "count of {partition}");
    }

    // Projection is ALL: whole items come back.
    let found = all(
        table,
        Query::partition(Index::Gsi1, "G").sort(SortKey::Equals("B#2".into())),
    )
    .await;
    assert_eq!(
        found,
        vec![item(json!({
            "PK": "IT#3", "SK": "META", "GSI1PK": "G", "GSI1SK": "B#2", "payload": {"n": 3}
        }))]
    );
    assert_eq!(
        keys_of(&all(table, Query::partition(Index::Gsi1, "G1")).await),
        vec![key("IT#8", "META")]
    );
    assert_eq!(
        keys_of(&all(table, Query::partition(Index::Gsi1, "H")).await),
        vec![key("IT#9", "META")]
    );
    // Base-table keys are not index keys and vice versa.
    assert!(
        all(table, Query::partition(Index::Gsi1, "IT#5"))
            .await
            .is_empty()
    );
    assert!(
        all(table, Query::partition(Index::Primary, "IT#"))
            .await
            .is_empty()
    );
    assert_eq!(
        keys_of(&all(table, Query::partition(Index::Primary, "G")).await),
        vec![key("G", "A")]
    );
}

// ---------------------------------------------------------------------------------------------
// 8. batch_get
// ---------------------------------------------------------------------------------------------

async fn batch_get_many_keys(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    let stored: Vec<Item> = (0..90)
        .map(|i| item(json!({"PK": format!("BG#{}", i % 7), "SK": format!("{i:03}"), "i": i})))
        .collect();
    table
        .batch_write(stored.iter().cloned().map(BatchOp::Put).collect())
        .await
        .expect("batch write");

    // 90 existing + 25 missing + 15 duplicates = 130 keys, duplicates far apart (across the
    // 100-key chunk boundary).
    let mut keys: Vec<Key> = keys_of(&stored);
    for i in 0..25 {
        keys.insert(
            i * 3,
            key(&format!("BG#{}", i % 7), &format!("missing-{i}")),
        );
    }
    for i in 0..15 {
        let k = Key::of(&stored[i * 6]).unwrap();
        keys.push(k);
    }
    assert_eq!(keys.len(), 130);
    let found = table.batch_get(&keys).await.expect("batch get");
    assert_eq!(found.len(), 90, "each existing item exactly once");
    let by_key: BTreeMap<Key, Item> = found
        .into_iter()
        .map(|i| (Key::of(&i).unwrap(), i))
        .collect();
    let want: BTreeMap<Key, Item> = stored
        .iter()
        .map(|i| (Key::of(i).unwrap(), i.clone()))
        .collect();
    assert_eq!(by_key, want);

    // Only missing keys, and no keys at all.
    let missing: Vec<Key> = (0..5).map(|i| key("BG#none", &i.to_string())).collect();
    assert!(
        table
            .batch_get(&missing)
            .await
            .expect("batch get")
            .is_empty()
    );
    assert!(table.batch_get(&[]).await.expect("batch get").is_empty());

    // A small mixed batch.
    let found = table
        .batch_get(&[key("BG#0", "000"), key("BG#0", "zzz"), key("BG#0", "000")])
        .await
        .expect("batch get");
    assert_eq!(found, vec![stored[0].clone()]);
}

// ---------------------------------------------------------------------------------------------
// 9. batch_write
// ---------------------------------------------------------------------------------------------

async fn batch_write_many_ops(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    let initial: Vec<BatchOp> = (0..60)
        .map(|i| {
            BatchOp::Put(item(
                json!({"PK": "BW#1", "SK": format!("{i:03}"), "gen": 1}),
            ))
        })
        .collect();
    table.batch_write(initial).await.expect("batch write");
    let stored = all(table, Query::partition(Index::Primary, "BW#1")).await;
    assert_eq!(stored.len(), 60);
    let want: Vec<Item> = (0..60)
        .map(|i| item(json!({"PK": "BW#1", "SK": format!("{i:03}"), "gen": 1})))
        .collect();
    assert_eq!(stored, want);

    // Mixed: delete every even item, overwrite every 5th odd one, add 20 new ones (some in
    // another partition, some indexed), and delete a few keys that never existed.
    let mut ops = Vec::new();
    let mut expected: BTreeMap<String, Item> = BTreeMap::new();
    for i in 0..60 {
        let sk = format!("{i:03}");
        if i % 2 == 0 {
            ops.push(BatchOp::Delete(key("BW#1", &sk)));
        } else if i % 5 == 0 {
            let replaced = item(json!({"PK": "BW#1", "SK": sk, "gen": 2}));
            ops.push(BatchOp::Put(replaced.clone()));
            expected.insert(sk, replaced);
        } else {
            expected.insert(sk.clone(), item(json!({"PK": "BW#1", "SK": sk, "gen": 1})));
        }
    }
    for i in 60..80 {
        let sk = format!("{i:03}");
        let new = item(json!({
            "PK": "BW#1", "SK": sk, "gen": 3, "GSI1PK": "BWIDX", "GSI1SK": sk
        }));
        ops.push(BatchOp::Put(new.clone()));
        expected.insert(sk, new);
    }
    for i in 0..5 {
        ops.push(BatchOp::Put(item(
            json!({"PK": "BW#2", "SK": format!("{i}")}),
        )));
        ops.push(BatchOp::Delete(key("BW#3", &format!("{i}"))));
    }
    // Interleave so each 25-op chunk holds deletes and puts. (moto does not enforce
    // BatchWriteItem's 25-request limit, so the adapter's chunking is only exercised, not
    // checked, on the DynamoDB backend; BatchGetItem's 100-key limit is enforced.)
    ops.sort_by_key(|op| match op {
        BatchOp::Put(i) => str_attr(i, SK).to_string(),
        BatchOp::Delete(k) => k.sk.clone(),
    });
    assert_eq!(ops.len(), 30 + 6 + 20 + 10);
    table.batch_write(ops).await.expect("mixed batch write");

    let stored = all(table, Query::partition(Index::Primary, "BW#1")).await;
    assert_eq!(stored, expected.values().cloned().collect::<Vec<_>>());
    assert_eq!(stored.len(), 30 + 20);
    assert_eq!(
        sks(&all(table, Query::partition(Index::Primary, "BW#2")).await),
        vec!["0", "1", "2", "3", "4"]
    );
    assert!(
        all(table, Query::partition(Index::Primary, "BW#3"))
            .await
            .is_empty()
    );
    let indexed = all(table, Query::partition(Index::Gsi1, "BWIDX")).await;
    assert_eq!(
        sks(&indexed),
        (60..80).map(|i| format!("{i:03}")).collect::<Vec<_>>()
    );

    // Deleting everything left.
    let ops: Vec<BatchOp> = keys_of(&stored).into_iter().map(BatchOp::Delete).collect();
    table.batch_write(ops).await.expect("delete all");
    assert!(
        all(table, Query::partition(Index::Primary, "BW#1"))
            .await
            .is_empty()
    );
    assert!(
        all(table, Query::partition(Index::Gsi1, "BWIDX"))
            .await
            .is_empty()
    );
    table.batch_write(Vec::new()).await.expect("an empty batch");
}

// ---------------------------------------------------------------------------------------------
// 10. transact_write
// ---------------------------------------------------------------------------------------------

async fn transact_write_all_or_nothing(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    put(table, json!({"PK": "TX#1", "SK": "a", "version": 1})).await;
    put(table, json!({"PK": "TX#1", "SK": "b", "count": 5})).await;
    put(table, json!({"PK": "TX#1", "SK": "c", "doomed": true})).await;
    put(table, json!({"PK": "TX#1", "SK": "d", "doomed": "later"})).await;
    put(table, json!({"PK": "TX#1", "SK": "e", "keep": true})).await;

    table
        .transact_write(vec![
            TransactOp::Put {
                item: item(json!({"PK": "TX#1", "SK": "new", "GSI1PK": "TXIDX", "GSI1SK": "1"})),
                condition: Some(Condition::NotExists),
            },
            TransactOp::Update {
                key: key("TX#1", "b"),
                update: Update::new().add("count", 1).set("touched", true),
                condition: Some(Condition::equals("count", 5)),
            },
            TransactOp::Delete {
                key: key("TX#1", "c"),
                condition: Some(Condition::Exists),
            },
            TransactOp::Check {
                key: key("TX#1", "a"),
                condition: Condition::equals("version", 1),
            },
            TransactOp::Update {
                key: key("TX#2", "upserted"),
                update: Update::new().add("n", 1),
                condition: None,
            },
        ])
        .await
        .expect("a transaction whose conditions all hold");

    let expected = vec![
        item(json!({"PK": "TX#1", "SK": "a", "version": 1})),
        item(json!({"PK": "TX#1", "SK": "b", "count": 6, "touched": true})),
        item(json!({"PK": "TX#1", "SK": "d", "doomed": "later"})),
        item(json!({"PK": "TX#1", "SK": "e", "keep": true})),
        item(json!({"PK": "TX#1", "SK": "new", "GSI1PK": "TXIDX", "GSI1SK": "1"})),
    ];
    assert_eq!(
        all(table, Query::partition(Index::Primary, "TX#1")).await,
        expected
    );
    assert_eq!(
        get(table, "TX#2", "upserted").await,
        Some(item(json!({"PK": "TX#2", "SK": "upserted", "n": 1})))
    );
    assert_eq!(
        keys_of(&all(table, Query::partition(Index::Gsi1, "TXIDX")).await),
        vec![key("TX#1", "new")]
    );

    // Every operation below would change the state; exactly one condition fails each time.
    let ops_with_failure = |failing: usize| -> Vec<TransactOp> {
        let mut ops = vec![
            TransactOp::Put {
                item: item(json!({"PK": "TX#1", "SK": "other", "GSI1PK": "TXIDX", "GSI1SK": "2"})),
                condition: Some(Condition::NotExists),
            },
            TransactOp::Update {
                key: key("TX#1", "b"),
                update: Update::new().add("count", 100).remove("touched"),
                condition: Some(Condition::equals("count", 6)),
            },
            TransactOp::Delete {
                key: key("TX#1", "new"),
                condition: Some(Condition::Exists),
            },
            TransactOp::Check {
                key: key("TX#1", "a"),
                condition: Condition::equals("version", 1),
            },
            TransactOp::Update {
                key: key("TX#2", "upserted"),
                update: Update::new().add("n", 1),
                condition: None,
            },
            TransactOp::Delete {
                key: key("TX#1", "d"),
                condition: None,
            },
        ];
        // Swap in a failing variant of operation `failing`.
        ops[failing] = match failing {
            0 => TransactOp::Put {
                item: item(json!({"PK": "TX#1", "SK": "e", "clobbered": true})),
                condition: Some(Condition::NotExists),
            },
            1 => TransactOp::Update {
                key: key("TX#1", "b"),
                update: Update::new().add("count", 100),
                condition: Some(Condition::equals("count", 5)),
            },
            2 => TransactOp::Delete {
                key: key("TX#1", "missing"),
                condition: Some(Condition::Exists),
            },
            3 => TransactOp::Check {
                key: key("TX#1", "a"),
                condition: Condition::equals("version", 2),
            },
            4 => TransactOp::Update {
                key: key("TX#2", "upserted"),
                update: Update::new().add("n", 1),
                condition: Some(Condition::LessThan("n".into(), json!(1))),
            },
            5 => TransactOp::Check {
                key: key("TX#1", "nobody"),
                condition: Condition::Exists,
            },
            _ => unreachable!(),
        };
        ops
    };
    for failing in 0..6 {
        let result = table.transact_write(ops_with_failure(failing)).await;
        assert!(
            matches!(result, Err(StoreError::TransactionCancelled { index: Some(i) }) if i == failing),
            "failing operation {failing}: got {result:?}"
        );
        // Nothing was written.
        assert_eq!(
            all(table, Query::partition(Index::Primary, "TX#1")).await,
            expected,
            "failing operation {failing}"
        );
        assert_eq!(
            get(table, "TX#2", "upserted").await,
            Some(item(json!({"PK": "TX#2", "SK": "upserted", "n": 1})))
        );
        assert_eq!(
            keys_of(&all(table, Query::partition(Index::Gsi1, "TXIDX")).await),
            vec![key("TX#1", "new")]
        );
    }
    // The same transaction without the failure goes through.
    let mut ops = ops_with_failure(5);
    ops[5] = TransactOp::Delete {
        key: key("TX#1", "d"),
        condition: None,
    };
    table
        .transact_write(ops)
        .await
        .expect("all conditions hold");
    assert_eq!(
        all(table, Query::partition(Index::Primary, "TX#1")).await,
        vec![
            item(json!({"PK": "TX#1", "SK": "a", "version": 1})),
            item(json!({"PK": "TX#1", "SK": "b", "count": 106})),
            item(json!({"PK": "TX#1", "SK": "e", "keep": true})),
            item(json!({"PK": "TX#1", "SK": "other", "GSI1PK": "TXIDX", "GSI1SK": "2"})),
        ]
    );
    assert_eq!(
        get(table, "TX#2", "upserted").await,
        Some(item(json!({"PK": "TX#2", "SK": "upserted", "n": 2})))
    );
    assert_eq!(
        keys_of(&all(table, Query::partition(Index::Gsi1, "TXIDX")).await),
        vec![key("TX#1", "other")]
    );
}

async fn transact_write_limits(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    put(table, json!({"PK": "TL#1", "SK": "a", "n": 1})).await;

    // The same key twice in one transaction.
    let duplicates: Vec<Vec<TransactOp>> = vec![
        vec![
            TransactOp::Put {
                item: item(json!({"PK": "TL#1", "SK": "x", "v": 1})),
                condition: None,
            },
            TransactOp::Update {
                key: key("TL#1", "x"),
                update: Update::new().set("v", 2),
                condition: None,
            },
        ],
        vec![
            TransactOp::Update {
                key: key("TL#1", "a"),
                update: Update::new().add("n", 1),
                condition: None,
            },
            TransactOp::Check {
                key: key("TL#1", "a"),
                condition: Condition::Exists,
            },
        ],
        vec![
            TransactOp::Put {
                item: item(json!({"PK": "TL#1", "SK": "y"})),
                condition: None,
            },
            TransactOp::Delete {
                key: key("TL#1", "a"),
                condition: None,
            },
            TransactOp::Put {
                item: item(json!({"PK": "TL#1", "SK": "y", "again": true})),
                condition: None,
            },
        ],
    ];
    for ops in duplicates {
        let result = table.transact_write(ops).await;
        assert_invalid(result, "the same key twice in one transaction");
        assert_eq!(
            all(table, Query::partition(Index::Primary, "TL#1")).await,
            vec![item(json!({"PK": "TL#1", "SK": "a", "n": 1}))]
        );
    }

    // Too many operations: rejected, nothing written.
    let puts = |n: usize| -> Vec<TransactOp> {
        (0..n)
            .map(|i| TransactOp::Put {
                item: item(json!({"PK": "TL#2", "SK": format!("{i:03}")})),
                condition: None,
            })
            .collect()
    };
    assert_invalid(
        table.transact_write(puts(MAX_TRANSACTION_OPS + 1)).await,
        "more than MAX_TRANSACTION_OPS",
    );
    assert!(
        all(table, Query::partition(Index::Primary, "TL#2"))
            .await
            .is_empty()
    );
    // Exactly the maximum is fine.
    table
        .transact_write(puts(MAX_TRANSACTION_OPS))
        .await
        .expect("MAX_TRANSACTION_OPS operations");
    assert_eq!(
        all(table, Query::partition(Index::Primary, "TL#2"))
            .await
            .len(),
        MAX_TRANSACTION_OPS
    );
}

// ---------------------------------------------------------------------------------------------
// 11. invalid keys
// ---------------------------------------------------------------------------------------------

async fn invalid_keys_are_rejected(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    put(table, json!({"PK": "IK#1", "SK": "ok", "n": 1})).await;
    let good = key("IK#1", "good");

    let long = "x".repeat(1025);
    let bad_keys = [
        key("", "sk"),
        key("pk", ""),
        key("", ""),
        key("p\0k", "sk"),
        key("pk", "s\0k"),
        key("\0", "sk"),
        key(&long, "sk"),
        key("pk", &long),
    ];
    for bad in &bad_keys {
        let what = |op: &str| format!("{op} with {bad:?}");
        let bad_item = item(json!({"PK": bad.pk, "SK": bad.sk, "n": 1}));
        assert_invalid(table.get(bad).await, &what("get"));
        assert_invalid(table.put(bad_item.clone(), None).await, &what("put"));
        assert_invalid(
            table
                .put(bad_item.clone(), Some(Condition::NotExists))
                .await,
            &what("conditional put"),
        );
        assert_invalid(
            table.update(bad, Update::new().set("n", 2), None).await,
            &what("update"),
        );
        assert_invalid(table.delete(bad, None).await, &what("delete"));
        assert_invalid(
            table.delete(bad, Some(Condition::Exists)).await,
            &what("conditional delete"),
        );
        assert_invalid(
            table.batch_get(&[good.clone(), bad.clone()]).await,
            &what("batch_get"),
        );
        assert_invalid(
            table
                .batch_write(vec![
                    BatchOp::Put(item(json!({"PK": "IK#1", "SK": "good"}))),
                    BatchOp::Put(bad_item.clone()),
                ])
                .await,
            &what("batch_write put"),
        );
        assert_invalid(
            table
                .batch_write(vec![
                    BatchOp::Put(item(json!({"PK": "IK#1", "SK": "good"}))),
                    BatchOp::Delete(bad.clone()),
                ])
                .await,
            &what("batch_write delete"),
        );
        let good_put = TransactOp::Put {
            item: item(json!({"PK": "IK#1", "SK": "good"})),
            condition: None,
        };
        for op in [
            TransactOp::Put {
                item: bad_item.clone(),
                condition: None,
            },
            TransactOp::Update {
                key: bad.clone(),
                update: Update::new().set("n", 2),
                condition: None,
            },
            TransactOp::Delete {
                key: bad.clone(),
                condition: None,
            },
            TransactOp::Check {
                key: bad.clone(),
                condition: Condition::NotExists,
            },
        ] {
            let desc = what(&format!("transact_write {op:?}"));
            assert_invalid(
                table.transact_write(vec![good_put.clone(), op]).await,
                &desc,
            );
        }
        // Nothing of the rejected batches and transactions was written.
        assert_eq!(
            table.get(&good).await.unwrap(),
            None,
            "{}",
            what("partial write")
        );
    }

    // Query partitions are keys too.
    for partition in ["", "IK\0#1"] {
        for index in [Index::Primary, Index::Gsi1] {
            assert_invalid(
                table.query(&Query::partition(index, partition)).await,
                &format!("query {index:?} on {partition:?}"),
            );
        }
    }

    // Item key attributes must be present strings; index attributes, if present, non-empty
    // strings.
    for bad_item in [
        json!({"PK": "IK#1"}),
        json!({"SK": "x"}),
        json!({"PK": 1, "SK": "x"}),
        json!({"PK": "IK#1", "SK": true}),
        json!({"PK": "IK#1", "SK": "x", "GSI1PK": "", "GSI1SK": "a"}),
        json!({"PK": "IK#1", "SK": "x", "GSI1PK": "g", "GSI1SK": 5}),
        json!({"PK": "IK#1", "SK": "x", "GSI1PK": "g\0", "GSI1SK": "a"}),
    ] {
        assert_invalid(
            table.put(item(bad_item.clone()), None).await,
            &format!("put {bad_item}"),
        );
        assert_invalid(
            table
                .batch_write(vec![BatchOp::Put(item(bad_item.clone()))])
                .await,
            &format!("batch_write {bad_item}"),
        );
    }
    assert_eq!(
        all(table, Query::partition(Index::Primary, "IK#1")).await,
        vec![item(json!({"PK": "IK#1", "SK": "ok", "n": 1}))]
    );
}

// ---------------------------------------------------------------------------------------------
// 12. item size limit
// ---------------------------------------------------------------------------------------------

async fn oversized_items_are_rejected(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();

    // Comfortably below the limit: fine.
    let big = item(json!({"PK": "SZ#1", "SK": "big", "blob": "x".repeat(300 * 1024)}));
    table.put(big.clone(), None).await.expect("a 300 KB item");
    assert_eq!(get(table, "SZ#1", "big").await, Some(big.clone()));

    // Over 400 KB: rejected as invalid, nothing stored. (moto enforces DynamoDB's limit too.)
    let huge = item(json!({"PK": "SZ#1", "SK": "huge", "blob": "x".repeat(401 * 1024)}));
    assert_invalid(table.put(huge.clone(), None).await, "a 401 KB put");
    assert_eq!(get(table, "SZ#1", "huge").await, None);
    assert_invalid(
        table.put(huge.clone(), Some(Condition::NotExists)).await,
        "a 401 KB conditional put",
    );
    assert_eq!(get(table, "SZ#1", "huge").await, None);
    assert!(
        table
            .batch_write(vec![BatchOp::Put(huge.clone())])
            .await
            .is_err(),
        "a 401 KB batch put was accepted"
    );
    assert_eq!(get(table, "SZ#1", "huge").await, None);
    let result = table
        .transact_write(vec![TransactOp::Put {
            item: huge,
            condition: None,
        }])
        .await;
    assert!(result.is_err(), "a 401 KB transactional put was accepted");
    assert_eq!(get(table, "SZ#1", "huge").await, None);

    // Growing an item past the limit with an update: rejected, the item is unchanged.
    assert_invalid(
        table
            .update(
                &key("SZ#1", "big"),
                Update::new().set("more", "y".repeat(110 * 1024)),
                None,
            )
            .await,
        "an update past 400 KB",
    );
    assert_eq!(get(table, "SZ#1", "big").await, Some(big));
}

/// A batch naming one key several times applies in order (last write wins) on both backends
/// (DynamoDB itself would reject the batch; the adapter sends only the last operation), and an
/// inverted BETWEEN matches nothing (DynamoDB itself would reject the query).
async fn batch_write_repeated_keys_and_inverted_between(backend: Backend) {
    let t = TestTable::new(backend).await;
    let table = t.table.as_ref();
    let ops = vec![
        BatchOp::Put(item(json!({"PK": "dup", "SK": "a", "n": 1}))),
        BatchOp::Put(item(json!({"PK": "dup", "SK": "a", "n": 2}))),
        BatchOp::Put(item(json!({"PK": "dup", "SK": "b", "n": 1}))),
        BatchOp::Delete(key("dup", "b")),
        BatchOp::Delete(key("dup", "c")),
        BatchOp::Put(item(json!({"PK": "dup", "SK": "c", "n": 3}))),
    ];
    table.batch_write(ops).await.unwrap();
    let stored = all(table, Query::partition(Index::Primary, "dup")).await;
    assert_eq!(sks(&stored), ["a", "c"]);
    assert_eq!(stored[0]["n"], 2);
    assert_eq!(stored[1]["n"], 3);
    let inverted =
        Query::partition(Index::Primary, "dup").sort(SortKey::Between("c".into(), "a".into()));
    assert!(table.query(&inverted).await.unwrap().items.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Space isolation of the repository's reads: every read of a space's object takes the space,
// and finds nothing for an object of another space (services never compare spaces).
// ---------------------------------------------------------------------------------------------

/// One of each space-owned object in space `a`; `b` is another space.
struct SpaceObjects {
    _table: TestTable,
    repo: shared::repo::Repository,
    a: uuid::Uuid,
    b: uuid::Uuid,
    pipeline: shared::domain::model::Pipeline,
    run: shared::domain::model::Run,
    task_run: shared::domain::model::TaskRun,
    comment: shared::domain::model::Comment,
    sync: shared::domain::sync::SyncRecord,
}

async fn space_objects(backend: Backend) -> SpaceObjects {
    use chrono::{Duration, Utc};
    use orchestration_tests::app::{new_connector, pipeline, run, task_run};
    use shared::domain::model::{Comment, CommentTarget, RunStatus};
    use shared::domain::sync::{SyncCounts, SyncRecord, SyncStatus, SyncTrigger};
    use uuid::Uuid;

    let t = TestTable::new(backend).await;
    let repo = shared::repo::Repository::new(t.table.clone());
    let (a, b, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let connector = new_connector(a, user, "A's Airflow");
    repo.put_connector(&connector).await.unwrap();
    let pipeline = pipeline(&connector, "etl");
    repo.upsert_pipeline_metadata(&pipeline).await.unwrap();
    let mut with_tasks = run(
        &pipeline,
        "scheduled__1",
        Duration::hours(1),
        RunStatus::Success,
        Some(60),
    );
    let task_run = task_run(&with_tasks.run, "extract", 1, "success", Some(30));
    with_tasks.task_runs.push(task_run.clone());
    let run = with_tasks.run.clone();
    repo.ingest_runs(&pipeline, vec![with_tasks], Utc::now())
        .await
        .unwrap();
    let now = Utc::now();
    let comment = Comment {
        id: Uuid::new_v4(),
        space_id: a,
        target_type: CommentTarget::Run,
        target_id: run.id,
        run_id: run.id,
        pipeline_id: pipeline.id,
        author_id: user,
        author_name: "Ada".into(),
        content: "looks slow".into(),
        created_at: now,
        updated_at: now,
        updated_by: user,
        edited: false,
        version: 1,
    };
    repo.create_comment(&comment).await.unwrap();
    let sync = SyncRecord {
        id: Uuid::new_v4(),
        connector_id: connector.id,
        space_id: a,
        trigger: SyncTrigger::Manual,
        triggered_by: Some(user),
        started_at: now,
        finished_at: Some(now),
        status: SyncStatus::Succeeded,
        counts: SyncCounts::default(),
        warnings: Vec::new(),
        error: None,
        airflow_requests: 3,
        pending: false,
    };
    repo.put_sync_record(&sync).await.unwrap();
    SpaceObjects {
        _table: t,
        repo,
        a,
        b,
        pipeline,
        run,
        task_run,
        comment,
        sync,
    }
}

async fn get_run_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert_eq!(o.repo.get_run(o.b, o.run.id).await.unwrap(), None);
    let own = o.repo.get_run(o.a, o.run.id).await.unwrap();
    assert_eq!(own.map(|run| run.id), Some(o.run.id));
}

async fn get_run_with_task_runs_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert_eq!(
        o.repo.get_run_with_task_runs(o.b, o.run.id).await.unwrap(),
        None
    );
    let own = o.repo.get_run_with_task_runs(o.a, o.run.id).await.unwrap();
    let ids = own.map(|(run, task_runs)| (run.id, task_runs.iter().map(|t| t.id).collect()));
    assert_eq!(ids, Some((o.run.id, vec![o.task_run.id])));
}

async fn get_task_run_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert_eq!(o.repo.get_task_run(o.b, o.task_run.id).await.unwrap(), None);
    let own = o.repo.get_task_run(o.a, o.task_run.id).await.unwrap();
    assert_eq!(own.map(|t| t.id), Some(o.task_run.id));
}

async fn get_comment_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert_eq!(o.repo.get_comment(o.b, o.comment.id).await.unwrap(), None);
    assert_eq!(
        o.repo.get_comment(o.a, o.comment.id).await.unwrap(),
        Some(o.comment)
    );
}

async fn list_comments_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert!(
        o.repo
            .list_comments(o.b, o.run.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        o.repo.list_comments(o.a, o.run.id).await.unwrap(),
        [o.comment]
    );
}

async fn list_runs_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    let pipeline = o.pipeline.id;
    let other = o.repo.list_runs(o.b, pipeline, None, None).await.unwrap();
    assert!(other.is_empty());
    let own = o.repo.list_runs(o.a, pipeline, None, None).await.unwrap();
    assert_eq!(own.iter().map(|run| run.id).collect::<Vec<_>>(), [o.run.id]);
}

async fn runs_from_end_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    for newest_first in [true, false] {
        let other = o.repo.runs_from_end(o.b, o.pipeline.id, 10, newest_first);
        assert!(other.await.unwrap().is_empty());
        let own = o.repo.runs_from_end(o.a, o.pipeline.id, 10, newest_first);
        let ids: Vec<_> = own.await.unwrap().iter().map(|run| run.id).collect();
        assert_eq!(ids, [o.run.id]);
    }
}

async fn runs_by_id_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    assert!(
        o.repo
            .runs_by_id(o.b, &[o.run.id])
            .await
            .unwrap()
            .is_empty()
    );
    let own = o.repo.runs_by_id(o.a, &[o.run.id]).await.unwrap();
    assert_eq!(own.get(&o.run.id).map(|run| run.id), Some(o.run.id));
}

async fn task_runs_by_key_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    let t = &o.task_run;
    let tries = [(t.run_id, t.task_id.as_str(), t.map_index, t.try_number)];
    assert!(
        o.repo
            .task_runs_by_key(o.b, &tries)
            .await
            .unwrap()
            .is_empty()
    );
    let own = o.repo.task_runs_by_key(o.a, &tries).await.unwrap();
    assert_eq!(own.get(&t.id).map(|t| t.id), Some(t.id));
}

async fn get_sync_record_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    let s = &o.sync;
    let read = |space| {
        o.repo
            .get_sync_record(space, s.connector_id, s.started_at, s.id)
    };
    assert_eq!(read(o.b).await.unwrap(), None);
    assert_eq!(read(o.a).await.unwrap().as_ref(), Some(s));
}

async fn list_sync_records_is_space_scoped(backend: Backend) {
    let o = space_objects(backend).await;
    let connector = o.sync.connector_id;
    let other = o.repo.list_sync_records(o.b, connector).await.unwrap();
    assert!(other.is_empty());
    assert_eq!(
        o.repo.list_sync_records(o.a, connector).await.unwrap(),
        [o.sync]
    );
}

on_both_backends!(
    batch_write_repeated_keys_and_inverted_between,
    put_get_round_trips_nested_values,
    conditional_put,
    update_set_remove_add,
    update_maintains_gsi1,
    invalid_updates_and_conditions_are_rejected,
    delete_semantics,
    query_primary_sort_key_operators,
    query_pagination,
    gsi1_query_sparse_and_sort_operators,
    batch_get_many_keys,
    batch_write_many_ops,
    transact_write_all_or_nothing,
    transact_write_limits,
    invalid_keys_are_rejected,
    oversized_items_are_rejected,
    get_run_is_space_scoped,
    get_run_with_task_runs_is_space_scoped,
    get_task_run_is_space_scoped,
    get_comment_is_space_scoped,
    list_comments_is_space_scoped,
    list_runs_is_space_scoped,
    runs_from_end_is_space_scoped,
    runs_by_id_is_space_scoped,
    task_runs_by_key_is_space_scoped,
    get_sync_record_is_space_scoped,
    list_sync_records_is_space_scoped,
);
