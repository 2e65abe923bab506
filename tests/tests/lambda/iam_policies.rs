//! template.yaml's IAM policies, statically: what must hold whatever the functions do.
//! (What they do is checked against the policies in `lambda_runtime_loop.rs`, which records
//! every AWS operation of every function; this file needs no server.)
//!
//! - No function may write API keys, memberships, spaces or users: every write is scoped with
//!   `dynamodb:LeadingKeys` to partitions other than theirs.
//! - `ConnectorSecretsPrefix` cannot widen the secrets grant (empty, wildcards, no closing `/`).
//! - `ConnectorSecretsKmsKeyArn`: nothing by default; when set, `kms:Decrypt` on that key only,
//!   only through Secrets Manager, only for the functions that read secrets.
//! - The evaluator itself follows IAM on the cases the policies rely on.

use std::collections::BTreeMap;

use orchestration_tests::aws_recorder::{AwsCall, table_arn};
use orchestration_tests::iam::{self, Clause, Statement, check, glob};
use orchestration_tests::sam_template::{Deployment, function_policies, load_template};
use serde_yaml_ng::Value as Yaml;

const TABLE: &str = "orchestration";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d";
/// The functions that call Airflow with a connector's secret (trigger, syncs).
const SECRET_READERS: [&str; 3] = ["connectors", "pipelines", "scheduled-sync"];
const WRITES: [&str; 5] = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
];

fn policies(parameters: &[(&str, &str)]) -> BTreeMap<String, Vec<Statement>> {
    let deployment = Deployment {
        table_name: TABLE.into(),
        parameters: parameters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    function_policies(&load_template(), &deployment)
}

/// CloudFormation's `AllowedPattern` matches the whole value.
fn allowed(parameter: &str, value: &str) -> bool {
    let template = load_template();
    let declared = &template["Parameters"][parameter];
    let pattern = declared["AllowedPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{parameter} has an AllowedPattern"));
    let whole = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
    let min = declared["MinLength"].as_u64().unwrap_or(0) as usize;
    value.len() >= min && whole.is_match(value)
}

#[test]
fn no_function_may_write_keys_memberships_spaces_or_users() {
    for (function, statements) in policies(&[]) {
        for statement in &statements {
            for action in &statement.actions {
                assert!(
                    !action.contains('*'),
                    "{function}: wildcard action {action}"
                );
            }
            for resource in &statement.resources {
                assert_ne!(resource, "*", "{function}: a statement on every resource");
            }
            let writes = statement
                .actions
                .iter()
                .any(|a| WRITES.contains(&a.as_str()));
            if !writes {
                continue;
            }
            assert_eq!(
                statement.resources,
                [table_arn(TABLE)],
                "{function}: writes go to the table, nothing else"
            );
            let scopes: Vec<&Clause> = statement
                .conditions
                .iter()
                .filter(|c| c.key == "dynamodb:LeadingKeys")
                .collect();
            assert!(
                scopes
                    .iter()
                    .any(|c| c.operator == "ForAllValues:StringLike"),
                "{function}: {:?} is not scoped to partitions",
                statement.actions
            );
            for clause in scopes {
                for pattern in &clause.values {
                    for forbidden in ["APIKEY#1", "SLUG#acme", "USER#1", "CONNECTORS"] {
                        assert!(
                            !glob(pattern, forbidden, false),
                            "{function} may write {forbidden} through {pattern}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn only_the_trigger_and_sync_functions_read_secrets_under_the_prefix() {
    let prefix_arn =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:orchestration/connectors/*";
    for (function, statements) in policies(&[]) {
        let secret_statements: Vec<&Statement> = statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("secretsmanager:")))
            .collect();
        if SECRET_READERS.contains(&function.as_str()) {
            assert_eq!(secret_statements.len(), 1, "{function}");
            assert_eq!(
                secret_statements[0].actions,
                ["secretsmanager:GetSecretValue"]
            );
            assert_eq!(secret_statements[0].resources, [prefix_arn], "{function}");
        } else {
            assert!(secret_statements.is_empty(), "{function} reads no secret");
        }
        assert!(
            statements
                .iter()
                .all(|s| s.actions.iter().all(|a| !a.starts_with("kms:"))),
            "{function}: no KMS grant without a customer-managed key"
        );
    }
}

#[test]
fn the_secrets_prefix_cannot_widen_the_grant() {
    assert!(allowed(
        "ConnectorSecretsPrefix",
        "orchestration/connectors/"
    ));
    assert!(allowed(
        "ConnectorSecretsPrefix",
        "prod/orchestration-connectors/"
    ));
    for wide in [
        "",
        "/",
        "*",
        "orchestration/*",
        "orchestration/connectors",
        "orchestration/connectors*/",
        "orchestration/?/",
    ] {
        assert!(
            !allowed("ConnectorSecretsPrefix", wide),
            "ConnectorSecretsPrefix accepts {wide:?}"
        );
    }
}

#[test]
fn a_customer_managed_key_is_decrypted_only_through_secrets_manager() {
    assert!(allowed("ConnectorSecretsKmsKeyArn", ""));
    assert!(allowed("ConnectorSecretsKmsKeyArn", KEY));
    for wide in [
        "*",
        "arn:aws:kms:*:*:key/*",
        "arn:aws:kms:us-east-1:123456789012:alias/orchestration",
        "arn:aws:kms:us-east-1:123456789012:key/*",
    ] {
        assert!(
            !allowed("ConnectorSecretsKmsKeyArn", wide),
            "ConnectorSecretsKmsKeyArn accepts {wide:?}"
        );
    }
    let template = load_template();
    assert_eq!(
        template["Parameters"]["ConnectorSecretsKmsKeyArn"]["Default"],
        Yaml::String(String::new()),
        "no key (the AWS managed key) by default"
    );
    for (function, statements) in policies(&[("ConnectorSecretsKmsKeyArn", KEY)]) {
        let kms: Vec<&Statement> = statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("kms:")))
            .collect();
        if !SECRET_READERS.contains(&function.as_str()) {
            assert!(kms.is_empty(), "{function} reads no secret: no KMS grant");
            continue;
        }
        assert_eq!(kms.len(), 1, "{function}");
        assert_eq!(kms[0].actions, ["kms:Decrypt"], "{function}");
        assert_eq!(kms[0].resources, [KEY], "{function}");
        assert_eq!(
            kms[0].conditions,
            [Clause {
                operator: "StringEquals".into(),
                key: "kms:ViaService".into(),
                values: vec!["secretsmanager.us-east-1.amazonaws.com".into()],
            }],
            "{function}"
        );
        // A decrypt for a secret is allowed; the same key used directly is not.
        let read = AwsCall {
            action: "secretsmanager:GetSecretValue".into(),
            resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:orchestration/connectors/x-AbCdEf".into(),
            leading_keys: vec![],
            context: vec![],
            status: 200,
        };
        let through_secrets_manager = iam::implied_kms_calls(std::slice::from_ref(&read), KEY);
        assert!(
            check(&statements, &through_secrets_manager)
                .denied
                .is_empty()
        );
        let direct = AwsCall {
            context: vec![],
            ..through_secrets_manager[0].clone()
        };
        assert!(
            !check(&statements, &[direct]).denied.is_empty(),
            "{function}"
        );
    }
}

fn call(action: &str, resource: &str, keys: &[&str]) -> AwsCall {
    AwsCall {
        action: action.into(),
        resource: resource.into(),
        leading_keys: keys.iter().map(|k| k.to_string()).collect(),
        context: vec![],
        status: 200,
    }
}

/// The evaluator on the cases the policies rely on, as IAM evaluates them.
#[test]
fn the_evaluator_follows_iam() {
    let table = table_arn(TABLE);
    let scoped = Statement {
        actions: vec!["dynamodb:BatchWriteItem".into()],
        resources: vec![table.clone()],
        conditions: vec![Clause {
            operator: "ForAllValues:StringLike".into(),
            key: "dynamodb:LeadingKeys".into(),
            values: vec!["RUN#*".into(), "PIPELINE#*".into()],
        }],
    };
    let statements = [scoped];
    // Every key of a batch must match (ForAllValues), action names ignore case.
    assert!(
        check(
            &statements,
            &[call(
                "dynamodb:batchwriteitem",
                &table,
                &["RUN#1", "PIPELINE#2"]
            )]
        )
        .denied
        .is_empty()
    );
    assert!(
        !check(
            &statements,
            &[call(
                "dynamodb:BatchWriteItem",
                &table,
                &["RUN#1", "APIKEY#2"]
            )]
        )
        .denied
        .is_empty()
    );
    // `COMMENT#*` is not `COMMENTS#*`; the index is another resource than the table.
    assert!(!glob("COMMENT#*", "COMMENTS#1", false));
    assert!(
        !check(
            &statements,
            &[call(
                "dynamodb:BatchWriteItem",
                &format!("{table}/index/GSI1"),
                &["RUN#1"]
            )]
        )
        .denied
        .is_empty()
    );
    // ForAllValues holds for an empty set (a table-wide call): such writes must not exist.
    assert!(
        check(&statements, &[call("dynamodb:BatchWriteItem", &table, &[])])
            .denied
            .is_empty()
    );
    // Least privilege per key pattern: PIPELINE#* unused here.
    let findings = check(
        &statements,
        &[call("dynamodb:BatchWriteItem", &table, &["RUN#1"])],
    );
    assert_eq!(
        findings.unused,
        [format!(
            "unused: dynamodb:BatchWriteItem on {table} for leading key PIPELINE#*"
        )]
    );
}
