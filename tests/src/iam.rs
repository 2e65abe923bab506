//! The functions' IAM policies (resolved by `sam_template`) evaluated against recorded AWS
//! operations (`aws_recorder`). [`check`] answers the two questions the IAM test asks of a
//! function:
//!
//! - denied: a recorded operation that no statement allows (an AccessDenied in production);
//! - unused: a granted action on a granted resource that no recorded operation used, and, for a
//!   statement scoped with `dynamodb:LeadingKeys`, a key pattern no operation of that action
//!   wrote (least privilege).
//!
//! Only what the template uses is evaluated (Allow statements, `StringLike`/`StringEquals`,
//! with `ForAllValues:`/`ForAnyValue:`); anything else fails loudly. `dynamodb:LeadingKeys` is
//! evaluated against the partition keys the operation touches (for an index query, the index's
//! partition key).

use std::collections::BTreeMap;

use crate::aws_recorder::{AwsCall, REGION, table_arn};
use crate::sam_template::{Deployment, function_policies, load_template};

/// One `Allow` statement, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Vec<Clause>,
}

/// `operator: { key: values }` of a `Condition` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// IAM's `StringLike` (and action names, case-insensitively, with `ignore_case`).
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Clause {
    /// Whether the clause holds for the operation (IAM's multi-valued semantics: a
    /// `ForAllValues:` clause holds for an empty set).
    fn holds(&self, call: &AwsCall) -> bool {
        let values: Vec<&str> = if self.key == "dynamodb:LeadingKeys" {
            call.leading_keys.iter().map(String::as_str).collect()
        } else {
            call.context
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(&self.key))
                .map(|(_, value)| value.as_str())
                .collect()
        };
        let (quantifier, operator) = match self.operator.split_once(':') {
            Some((quantifier, operator)) => (Some(quantifier), operator),
            None => (None, self.operator.as_str()),
        };
        let matches = |value: &str| {
            self.values.iter().any(|pattern| match operator {
                "StringLike" => glob(pattern, value, false),
                "StringEquals" => pattern == value,
                other => panic!("condition operator {other} is not evaluated by the IAM test"),
            })
        };
        match quantifier {
            Some("ForAllValues") => values.iter().all(|v| matches(v)),
            Some("ForAnyValue") => values.iter().any(|v| matches(v)),
            None => {
                assert!(
                    values.len() <= 1,
                    "{} is multi-valued: use ForAllValues",
                    self.key
                );
                values.first().is_some_and(|v| matches(v))
            }
            Some(other) => panic!("condition quantifier {other} is not evaluated"),
        }
    }
}

impl Statement {
    fn allows(&self, call: &AwsCall) -> bool {
        self.actions.iter().any(|a| glob(a, &call.action, true))
            && self
                .resources
                .iter()
                .any(|r| glob(r, &call.resource, false))
            && self.conditions.iter().all(|c| c.holds(call))
    }
}

/// What the policies of one function get wrong for its recorded operations.
#[derive(Debug, Default, PartialEq)]
pub struct Findings {
    /// Operations no statement allows: AccessDenied in production.
    pub denied: Vec<String>,
    /// Grants no operation used: more than least privilege.
    pub unused: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.denied.is_empty() && self.unused.is_empty()
    }
}

pub fn check(statements: &[Statement], calls: &[AwsCall]) -> Findings {
    let mut findings = Findings::default();
    for call in calls {
        if !statements.iter().any(|s| s.allows(call)) {
            let line = format!("denied: {call}");
            if !findings.denied.contains(&line) {
                findings.denied.push(line);
            }
        }
    }
    for statement in statements {
        for action in &statement.actions {
            if action.contains('*') {
                findings.unused.push(format!("wildcard action {action}"));
            }
            for resource in &statement.resources {
                let used: Vec<&AwsCall> = calls
                    .iter()
                    .filter(|c| glob(action, &c.action, true) && glob(resource, &c.resource, false))
                    .filter(|c| statement.conditions.iter().all(|cl| cl.holds(c)))
                    .collect();
                if used.is_empty() {
                    findings
                        .unused
                        .push(format!("unused: {action} on {resource}"));
                    continue;
                }
                for clause in statement
                    .conditions
                    .iter()
                    .filter(|c| c.key == "dynamodb:LeadingKeys")
                {
                    for pattern in &clause.values {
                        let written = used
                            .iter()
                            .any(|c| c.leading_keys.iter().any(|k| glob(pattern, k, false)));
                        if !written {
                            findings.unused.push(format!(
                                "unused: {action} on {resource} for leading key {pattern}"
                            ));
                        }
                    }
                }
            }
        }
    }
    findings
}

/// The KMS decrypts Secrets Manager makes on a function's behalf when the secrets are
/// encrypted with a customer-managed key: one per secret read, through Secrets Manager.
pub fn implied_kms_calls(calls: &[AwsCall], key_arn: &str) -> Vec<AwsCall> {
    calls
        .iter()
        .filter(|c| c.action == "secretsmanager:GetSecretValue" && c.status < 300)
        .map(|c| AwsCall {
            action: "kms:Decrypt".into(),
            resource: key_arn.into(),
            leading_keys: Vec::new(),
            context: vec![(
                "kms:ViaService".into(),
                format!("secretsmanager.{REGION}.amazonaws.com"),
            )],
            status: c.status,
        })
        .collect()
}

/// The operations of each function, grouped (action, resource, partition-key prefixes), for
/// the test's output.
pub fn describe_operations(calls: &BTreeMap<&str, Vec<AwsCall>>) -> String {
    let mut out = String::new();
    for (function, calls) in calls {
        let mut grouped: BTreeMap<(String, String), std::collections::BTreeSet<String>> =
            BTreeMap::new();
        for call in calls {
            let resource = call
                .resource
                .rsplit_once(":table/")
                .map(|(_, tail)| match tail.split_once('/') {
                    Some((_, index)) => index.to_string(),
                    None => "table".to_string(),
                })
                .unwrap_or_else(|| call.resource.clone());
            let prefixes = grouped.entry((call.action.clone(), resource)).or_default();
            for key in &call.leading_keys {
                prefixes.insert(match key.split_once('#') {
                    Some((prefix, _)) => format!("{prefix}#"),
                    None => key.clone(),
                });
            }
        }
        out.push_str(&format!("{function}:\n"));
        for ((action, resource), prefixes) in grouped {
            let prefixes: Vec<String> = prefixes.into_iter().collect();
            out.push_str(&format!("  {action} on {resource} {prefixes:?}\n"));
        }
    }
    out
}

/// The customer-managed key of the KMS evaluation (any key ARN of the account).
pub const TEST_KMS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d";

/// The IAM test over one recording: for each function, its policy allows every operation it
/// made and grants nothing it did not use, with the parameters' defaults and with connector
/// secrets under a customer-managed KMS key; and the check fails when any one grant is removed
/// or an unused one is added (so a pass means something).
pub fn assert_policies(table_name: &str, calls: &BTreeMap<&str, Vec<AwsCall>>) {
    let template = load_template();
    let defaults = Deployment {
        table_name: table_name.to_string(),
        parameters: BTreeMap::new(),
    };
    let with_kms = Deployment {
        parameters: BTreeMap::from([(
            "ConnectorSecretsKmsKeyArn".to_string(),
            TEST_KMS_KEY.to_string(),
        )]),
        ..defaults.clone()
    };
    let mut failures = Vec::new();
    for (deployment, what) in [(&defaults, "defaults"), (&with_kms, "with a KMS key")] {
        let policies = function_policies(&template, deployment);
        assert_eq!(
            policies.keys().map(String::as_str).collect::<Vec<_>>(),
            calls.keys().copied().collect::<Vec<_>>(),
            "one policy per recorded function"
        );
        for (function, recorded) in calls {
            let mut recorded = recorded.clone();
            if deployment
                .parameters
                .contains_key("ConnectorSecretsKmsKeyArn")
            {
                recorded.extend(implied_kms_calls(&recorded, TEST_KMS_KEY));
            }
            let findings = check(&policies[*function], &recorded);
            if !findings.is_clean() {
                failures.push(format!("{function} ({what}): {findings:#?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "template.yaml's policies do not match what the functions do:\n{}\n\nrecorded:\n{}",
        failures.join("\n"),
        describe_operations(calls)
    );

    // The check can fail: without any one of its grants a function is denied something, and
    // with an extra action, resource or leading key it is over-privileged.
    let policies = function_policies(&template, &defaults);
    for (function, statements) in &policies {
        let recorded = &calls[function.as_str()];
        for (s, statement) in statements.iter().enumerate() {
            for (a, action) in statement.actions.iter().enumerate() {
                let mut fewer = statements.clone();
                fewer[s].actions.remove(a);
                assert!(
                    !check(&fewer, recorded).denied.is_empty(),
                    "{function}: removing {action} from statement {s} goes unnoticed"
                );
            }
            let mut wider = statements.clone();
            wider[s]
                .resources
                .push(format!("{}/index/Other", table_arn(table_name)));
            assert!(
                !check(&wider, recorded).unused.is_empty(),
                "{function}: an extra resource in statement {s} goes unnoticed"
            );
            if let Some(clause) = statement
                .conditions
                .iter()
                .position(|c| c.key == "dynamodb:LeadingKeys")
            {
                let mut wider = statements.clone();
                wider[s].conditions[clause].values.push("APIKEY#*".into());
                assert!(
                    !check(&wider, recorded).unused.is_empty(),
                    "{function}: an extra leading key in statement {s} goes unnoticed"
                );
            }
        }
        let mut more = statements.clone();
        more.push(Statement {
            actions: vec!["dynamodb:Scan".into()],
            resources: vec![table_arn(table_name)],
            conditions: Vec::new(),
        });
        assert!(
            !check(&more, recorded).unused.is_empty(),
            "{function}: an extra action goes unnoticed"
        );
    }
}
