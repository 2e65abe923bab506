//! The Amazon DynamoDB adapter (`aws-sdk-dynamodb`, items converted with `serde_dynamo`).
//!
//! Reads of the base table are strongly consistent; index queries are eventually consistent
//! (DynamoDB offers nothing else on a GSI). Batches are chunked to DynamoDB's limits and
//! unprocessed items retried with jittered backoff; the SDK's own retry policy covers
//! throttling and transient errors of single requests.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    Put, PutRequest, ReturnValue, ScalarAttributeType, Select, TransactWriteItem,
    Update as DynamoUpdate, WriteRequest,
};
use serde_dynamo::aws_sdk_dynamodb_1 as convert;
use serde_json::Value;

use super::{
    BatchOp, Condition, CountPage, Cursor, GSI1_NAME, GSI1_PK, GSI1_SK, Index, Item, Key, PK,
    Query, QueryPage, SK, SortKey, StoreError, StoreResult, Table, TransactOp, Update,
    validate_item_keys, validate_key,
};

type Attributes = HashMap<String, AttributeValue>;

const BATCH_GET_LIMIT: usize = 100;
const BATCH_WRITE_LIMIT: usize = 25;
/// Attempts for the unprocessed remainder of a batch before giving up (SDK retries come on top).
const BATCH_ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    /// One BatchGetItem of at most [`BATCH_GET_LIMIT`] keys, retrying unprocessed keys.
    async fn batch_get_chunk(&self, chunk: &[&Key]) -> StoreResult<Vec<Item>> {
        let mut found = Vec::with_capacity(chunk.len());
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(chunk.iter().map(|key| key_attributes(key)).collect()))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        for attempt in 0.. {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(sdk_error)?;
            if let Some(mut responses) = output.responses {
                for item in responses.remove(&self.table).unwrap_or_default() {
                    found.push(from_attributes(item)?);
                }
            }
            match output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
            {
                Some(rest) if !rest.keys.is_empty() => {
                    if attempt + 1 >= BATCH_ATTEMPTS {
                        return Err(StoreError::Unavailable(
                            "batch read still had unprocessed keys after retries".into(),
                        ));
                    }
                    backoff(attempt).await;
                    pending = rest;
                }
                _ => break,
            }
        }
        Ok(found)
    }
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client from the standard AWS environment (region, credentials, and
    /// `AWS_ENDPOINT_URL_DYNAMODB` for a local DynamoDB-compatible server; blank = unset).
    /// Fails without a region.
    pub async fn from_env(table: impl Into<String>) -> StoreResult<Self> {
        let config = crate::aws::sdk_config()
            .await
            .map_err(StoreError::Invalid)?;
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&config);
        if let Some(endpoint) =
            crate::aws::blank_endpoint_override("AWS_ENDPOINT_URL_DYNAMODB", &config)
        {
            builder.set_endpoint_url(endpoint);
        }
        builder.push_interceptor(aws_sdk_dynamodb::config::SharedInterceptor::new(
            crate::aws::timing::Timing,
        ));
        Ok(Self::new(Client::from_conf(builder.build()), table))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the table with the key schema and index the application uses (on-demand
    /// capacity). Production tables come from `template.yaml`; this serves local servers and
    /// tests, and must stay in step with the template.
    pub async fn create_table(&self) -> StoreResult<()> {
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition is complete")
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .expect("key schema element is complete")
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI1_NAME)
            .key_schema(key(GSI1_PK, KeyType::Hash))
            .key_schema(key(GSI1_SK, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .expect("index definition is complete");
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attr(PK))
            .attribute_definitions(string_attr(SK))
            .attribute_definitions(string_attr(GSI1_PK))
            .attribute_definitions(string_attr(GSI1_SK))
            .key_schema(key(PK, KeyType::Hash))
            .key_schema(key(SK, KeyType::Range))
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("ResourceInUseException") => Ok(()),
            Err(error) => Err(sdk_error(error)),
        }
    }

    /// The Query request for a port query, or `None` when it can match nothing.
    fn query_request(
        &self,
        query: &Query,
    ) -> StoreResult<Option<aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder>> {
        // Same check as the embedded adapter: no stored item can have such a key.
        if query.partition.is_empty() || query.partition.contains('\0') {
            return Err(StoreError::Invalid("invalid partition key".into()));
        }
        // DynamoDB rejects BETWEEN a AND b with a > b; it matches nothing, as on the embedded store.
        if matches!(&query.sort, SortKey::Between(low, high) if low.as_bytes() > high.as_bytes()) {
            return Ok(None);
        }
        let mut placeholders = Placeholders::default();
        let expression = key_condition(&mut placeholders, query);
        let start = query.start.as_ref().map(|Cursor(keys)| {
            keys.iter()
                .map(|(name, value)| (name.clone(), AttributeValue::S(value.clone())))
                .collect::<Attributes>()
        });
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(expression)
            .set_expression_attribute_names(placeholders.names())
            .set_expression_attribute_values(placeholders.values())
            .scan_index_forward(query.forward)
            .set_limit(query.limit.map(|l| l.clamp(1, i32::MAX as u32) as i32))
            .set_exclusive_start_key(start);
        Ok(Some(match query.index {
            Index::Primary => request.consistent_read(true),
            Index::Gsi1 => request.index_name(GSI1_NAME),
        }))
    }
}

fn to_attributes(item: &Item) -> StoreResult<Attributes> {
    convert::to_item(item).map_err(|e| StoreError::Invalid(format!("cannot encode item: {e}")))
}

fn from_attributes(attributes: Attributes) -> StoreResult<Item> {
    convert::from_item(attributes)
        .map_err(|e| StoreError::Backend(format!("cannot decode item: {e}")))
}

fn to_value(value: &Value) -> StoreResult<AttributeValue> {
    convert::to_attribute_value(value)
        .map_err(|e| StoreError::Invalid(format!("cannot encode value: {e}")))
}

fn key_attributes(key: &Key) -> Attributes {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(key.pk.clone())),
        (SK.to_string(), AttributeValue::S(key.sk.clone())),
    ])
}

/// Maps SDK errors onto the port's error kinds.
fn sdk_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match error.code() {
        Some("ConditionalCheckFailedException") => StoreError::ConditionFailed,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException",
        ) => StoreError::Unavailable(error.message().unwrap_or("throttled").to_string()),
        Some("ValidationException") => {
            StoreError::Invalid(error.message().unwrap_or("validation error").to_string())
        }
        Some(code) => StoreError::Backend(format!(
            "{code}: {}",
            error.message().unwrap_or("no message")
        )),
        None => match &error {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => StoreError::Unavailable(
                format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&error)),
            ),
            _ => StoreError::Backend(format!(
                "{}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&error)
            )),
        },
    }
}

/// Placeholder names and values for one expression (or a set of expressions of one request).
#[derive(Default)]
struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| n.as_str() == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_string());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn condition(&mut self, condition: &Condition) -> StoreResult<String> {
        Ok(match condition {
            Condition::Exists => format!("attribute_exists({})", self.name(PK)),
            Condition::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Condition::Equals(name, value) => {
                let value = to_value(value)?;
                format!("{} = {}", self.name(name), self.value(value))
            }
            Condition::LessThan(name, value) => {
                let value = to_value(value)?;
                format!("{} < {}", self.name(name), self.value(value))
            }
            Condition::AttributeNotExists(name) => {
                format!("attribute_not_exists({})", self.name(name))
            }
            Condition::And(parts) | Condition::Or(parts) => {
                let joiner = if matches!(condition, Condition::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                if parts.is_empty() {
                    return Err(StoreError::Invalid("empty condition group".into()));
                }
                let rendered = parts
                    .iter()
                    .map(|part| self.condition(part).map(|text| format!("({text})")))
                    .collect::<StoreResult<Vec<_>>>()?;
                rendered.join(joiner)
            }
        })
    }

    fn update(&mut self, update: &Update) -> StoreResult<String> {
        if update.is_empty() {
            return Err(StoreError::Invalid(
                "an update needs at least one action".into(),
            ));
        }
        let mut clauses = Vec::new();
        if !update.set.is_empty() {
            let sets = update
                .set
                .iter()
                .map(|(name, value)| {
                    let value = to_value(value)?;
                    Ok(format!("{} = {}", self.name(name), self.value(value)))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            clauses.push(format!("SET {}", sets.join(", ")));
        }
        if !update.remove.is_empty() {
            let removes: Vec<_> = update.remove.iter().map(|name| self.name(name)).collect();
            clauses.push(format!("REMOVE {}", removes.join(", ")));
        }
        if !update.add.is_empty() {
            let adds: Vec<_> = update
                .add
                .iter()
                .map(|(name, delta)| {
                    let placeholder = self.value(AttributeValue::N(delta.to_string()));
                    format!("{} {}", self.name(name), placeholder)
                })
                .collect();
            clauses.push(format!("ADD {}", adds.join(", ")));
        }
        Ok(clauses.join(" "))
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// An update may not give the index key attributes values a put could not store (see
/// `validate_item_keys`); DynamoDB-compatible servers do not all check this, and DynamoDB itself
/// accepts NUL characters, which the embedded adapter rejects.
fn validate_update(update: &Update) -> StoreResult<()> {
    for (name, value) in &update.set {
        if name == GSI1_PK || name == GSI1_SK {
            match value.as_str() {
                Some(s) if !s.is_empty() && !s.contains('\0') => {}
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "{name} must be a non-empty string without NUL characters"
                    )));
                }
            }
        }
    }
    if update
        .add
        .iter()
        .any(|(name, _)| name == GSI1_PK || name == GSI1_SK)
    {
        return Err(StoreError::Invalid(
            "index key attributes are strings".into(),
        ));
    }
    Ok(())
}

fn key_condition(placeholders: &mut Placeholders, query: &Query) -> String {
    let (pk_name, sk_name) = query.index.key_names();
    let pk = placeholders.name(pk_name);
    let partition = placeholders.value(AttributeValue::S(query.partition.clone()));
    let mut expression = format!("{pk} = {partition}");
    let sk = |placeholders: &mut Placeholders, op: &str, value: &str| {
        let name = placeholders.name(sk_name);
        let value = placeholders.value(AttributeValue::S(value.to_string()));
        format!(" AND {name} {op} {value}")
    };
    expression.push_str(&match &query.sort {
        SortKey::Any => String::new(),
        SortKey::Equals(x) => sk(placeholders, "=", x),
        SortKey::LessThan(x) => sk(placeholders, "<", x),
        SortKey::LessOrEqual(x) => sk(placeholders, "<=", x),
        SortKey::GreaterThan(x) => sk(placeholders, ">", x),
        SortKey::GreaterOrEqual(x) => sk(placeholders, ">=", x),
        SortKey::BeginsWith(prefix) => {
            let name = placeholders.name(sk_name);
            let value = placeholders.value(AttributeValue::S(prefix.clone()));
            format!(" AND begins_with({name}, {value})")
        }
        SortKey::Between(low, high) => {
            let name = placeholders.name(sk_name);
            let low = placeholders.value(AttributeValue::S(low.clone()));
            let high = placeholders.value(AttributeValue::S(high.clone()));
            format!(" AND {name} BETWEEN {low} AND {high}")
        }
    });
    expression
}

async fn backoff(attempt: u32) {
    let base = 25u64 << attempt.min(6);
    let jitter = rand::random_range(0..=base);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter / 2)).await;
}

/// A `LastEvaluatedKey` as the port's cursor.
fn cursor(keys: Attributes) -> Cursor {
    Cursor(
        keys.into_iter()
            .filter_map(|(name, value)| match value {
                AttributeValue::S(s) => Some((name, s)),
                _ => None,
            })
            .collect(),
    )
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key) -> StoreResult<Option<Item>> {
        validate_key(key)?;
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        output.item.map(from_attributes).transpose()
    }

    async fn batch_get(&self, keys: &[Key]) -> StoreResult<Vec<Item>> {
        let mut unique: Vec<&Key> = Vec::with_capacity(keys.len());
        for key in keys {
            validate_key(key)?;
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        // Each BatchGetItem holds at most 100 keys; the requests of one read are sent at once
        // (a page of 100 pipelines reads 200 or 201 keys: three requests in the time of one).
        let chunks = unique
            .chunks(BATCH_GET_LIMIT)
            .map(|chunk| self.batch_get_chunk(chunk));
        let found = futures::future::try_join_all(chunks).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn put(&self, item: Item, condition: Option<Condition>) -> StoreResult<()> {
        validate_item_keys(&item)?;
        let mut placeholders = Placeholders::default();
        let expression = condition
            .as_ref()
            .map(|c| placeholders.condition(c))
            .transpose()?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_attributes(&item)?))
            .set_condition_expression(expression)
            .set_expression_attribute_names(placeholders.names())
            .set_expression_attribute_values(placeholders.values())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn update(
        &self,
        key: &Key,
        update: Update,
        condition: Option<Condition>,
    ) -> StoreResult<Item> {
        validate_key(key)?;
        validate_update(&update)?;
        let mut placeholders = Placeholders::default();
        let update_expression = placeholders.update(&update)?;
        let condition = condition
            .as_ref()
            .map(|c| placeholders.condition(c))
            .transpose()?;
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .update_expression(update_expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(placeholders.names())
            .set_expression_attribute_values(placeholders.values())
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(sdk_error)?;
        from_attributes(output.attributes.unwrap_or_default())
    }

    async fn delete(&self, key: &Key, condition: Option<Condition>) -> StoreResult<()> {
        validate_key(key)?;
        let mut placeholders = Placeholders::default();
        let expression = condition
            .as_ref()
            .map(|c| placeholders.condition(c))
            .transpose()?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_attributes(key)))
            .set_condition_expression(expression)
            .set_expression_attribute_names(placeholders.names())
            .set_expression_attribute_values(placeholders.values())
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn query(&self, query: &Query) -> StoreResult<QueryPage> {
        let Some(request) = self.query_request(query)? else {
            return Ok(QueryPage::default());
        };
        let output = request.send().await.map_err(sdk_error)?;
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attributes)
            .collect::<StoreResult<Vec<_>>>()?;
        let next = output.last_evaluated_key.map(cursor);
        Ok(QueryPage { items, next })
    }

    async fn count(&self, query: &Query) -> StoreResult<CountPage> {
        let unlimited = Query {
            limit: None,
            ..query.clone()
        };
        let Some(request) = self.query_request(&unlimited)? else {
            return Ok(CountPage::default());
        };
        let output = request
            .select(Select::Count)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(CountPage {
            count: output.count.max(0) as u64,
            next: output.last_evaluated_key.map(cursor),
        })
    }

    async fn batch_write(&self, ops: Vec<BatchOp>) -> StoreResult<()> {
        // DynamoDB rejects a batch naming one key twice; the port's meaning (and the embedded
        // adapter's) is "in order, last write wins", so only the last operation per key is sent.
        let mut last_of_key = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            let key = match op {
                BatchOp::Put(item) => validate_item_keys(item)?,
                BatchOp::Delete(key) => key.clone(),
            };
            last_of_key.insert(key, index);
        }
        let mut requests = Vec::with_capacity(last_of_key.len());
        for (index, op) in ops.into_iter().enumerate() {
            let key = match &op {
                BatchOp::Put(item) => super::Key::of(item).expect("validated above"),
                BatchOp::Delete(key) => key.clone(),
            };
            if last_of_key.get(&key) != Some(&index) {
                continue;
            }
            requests.push(match op {
                BatchOp::Put(item) => {
                    validate_item_keys(&item)?;
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(to_attributes(&item)?))
                                .build()
                                .map_err(|e| StoreError::Invalid(e.to_string()))?,
                        )
                        .build()
                }
                BatchOp::Delete(key) => {
                    validate_key(&key)?;
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key_attributes(&key)))
                                .build()
                                .map_err(|e| StoreError::Invalid(e.to_string()))?,
                        )
                        .build()
                }
            });
        }
        for chunk in requests.chunks(BATCH_WRITE_LIMIT) {
            let mut pending = chunk.to_vec();
            for attempt in 0.. {
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                match output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                {
                    Some(rest) if !rest.is_empty() => {
                        if attempt + 1 >= BATCH_ATTEMPTS {
                            return Err(StoreError::Unavailable(
                                "batch write still had unprocessed items after retries".into(),
                            ));
                        }
                        backoff(attempt).await;
                        pending = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(())
    }

    async fn transact_write(&self, ops: Vec<TransactOp>) -> StoreResult<()> {
        if ops.len() > super::MAX_TRANSACTION_OPS {
            return Err(StoreError::Invalid(format!(
                "a transaction holds at most {} operations",
                super::MAX_TRANSACTION_OPS
            )));
        }
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Invalid(e.to_string());
        let mut items = Vec::with_capacity(ops.len());
        for op in &ops {
            let mut placeholders = Placeholders::default();
            let item = match op {
                TransactOp::Put { item, condition } => {
                    validate_item_keys(item)?;
                    let condition = condition
                        .as_ref()
                        .map(|c| placeholders.condition(c))
                        .transpose()?;
                    TransactWriteItem::builder().put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(to_attributes(item)?))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(placeholders.names())
                            .set_expression_attribute_values(placeholders.values())
                            .build()
                            .map_err(invalid)?,
                    )
                }
                TransactOp::Update {
                    key,
                    update,
                    condition,
                } => {
                    validate_key(key)?;
                    validate_update(update)?;
                    let expression = placeholders.update(update)?;
                    let condition = condition
                        .as_ref()
                        .map(|c| placeholders.condition(c))
                        .transpose()?;
                    TransactWriteItem::builder().update(
                        DynamoUpdate::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attributes(key)))
                            .update_expression(expression)
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(placeholders.names())
                            .set_expression_attribute_values(placeholders.values())
                            .build()
                            .map_err(invalid)?,
                    )
                }
                TransactOp::Delete { key, condition } => {
                    validate_key(key)?;
                    let condition = condition
                        .as_ref()
                        .map(|c| placeholders.condition(c))
                        .transpose()?;
                    TransactWriteItem::builder().delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attributes(key)))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(placeholders.names())
                            .set_expression_attribute_values(placeholders.values())
                            .build()
                            .map_err(invalid)?,
                    )
                }
                TransactOp::Check { key, condition } => {
                    validate_key(key)?;
                    let condition = placeholders.condition(condition)?;
                    TransactWriteItem::builder().condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(key_attributes(key)))
                            .condition_expression(condition)
                            .set_expression_attribute_names(placeholders.names())
                            .set_expression_attribute_values(placeholders.values())
                            .build()
                            .map_err(invalid)?,
                    )
                }
            };
            items.push(item.build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancel)) = error.as_service_error() {
                    let reasons = cancel.cancellation_reasons();
                    let failed = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"));
                    if failed.is_some() || reasons.is_empty() {
                        return Err(StoreError::TransactionCancelled { index: failed });
                    }
                    if reasons.iter().any(|r| r.code() == Some("TransactionConflict") || r.code() == Some("ThrottlingError")) {
                        return Err(StoreError::Unavailable("transaction conflict".into()));
                    }
                    return Err(StoreError::TransactionCancelled { index: None });
                }
                Err(sdk_error(error))
            }
        }
    }

    fn backend_name(&self) -> &'static str {
        "dynamodb"
    }
}
