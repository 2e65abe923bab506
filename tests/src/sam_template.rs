//! `template.yaml` resolved the way CloudFormation would for one deployment: the functions'
//! inline `Policies:` statements ([`function_policies`]) and environments
//! ([`function_environment`]), with the intrinsics the template uses (`!Ref`, `!Sub`,
//! `!GetAtt Table.Arn`, `!If`, `!Equals`, `!Not`, `!Join`, conditions) evaluated against the
//! parameters' defaults or given values, moto's region and account, and the table of the test.
//! Anything else fails loudly rather than being resolved wrongly.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use serde_yaml_ng::Value as Yaml;

use crate::aws_recorder::{ACCOUNT, REGION, table_arn};
use crate::iam::{Clause, Statement};

/// Where the policies are evaluated: the table and any parameter values besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub table_name: String,
    pub parameters: BTreeMap<String, String>,
}

pub fn load_template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let text = std::fs::read_to_string(path).expect("read template.yaml");
    serde_yaml_ng::from_str(&text).expect("template.yaml parses (CloudFormation tags included)")
}

/// Each function's statements, by the binary it runs (`Metadata.BuildProperties.Binary`).
pub fn function_policies(
    template: &Yaml,
    deployment: &Deployment,
) -> BTreeMap<String, Vec<Statement>> {
    let resolver = Resolver {
        template,
        deployment,
    };
    let mut policies = BTreeMap::new();
    for (id, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap_or("?");
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no Metadata.BuildProperties.Binary"));
        let mut statements = Vec::new();
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let document = resolver.resolve(policy);
            let list = document["Statement"].as_array().unwrap_or_else(|| {
                panic!("{id}: only inline policies with a Statement list are evaluated: {document}")
            });
            statements.extend(
                list.iter()
                    .filter(|s| !s.is_null())
                    .map(|s| statement(id, s)),
            );
        }
        policies.insert(binary.to_string(), statements);
    }
    policies
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_str()
                    .unwrap_or_else(|| panic!("{what}: {v}"))
                    .to_string()
            })
            .collect(),
        other => panic!("{what}: expected a string or a list, found {other}"),
    }
}

fn statement(function: &str, value: &Value) -> Statement {
    let object = value.as_object().expect("a statement is a mapping");
    for key in object.keys() {
        assert!(
            ["Effect", "Action", "Resource", "Condition", "Sid"].contains(&key.as_str()),
            "{function}: {key} is not evaluated by this test"
        );
    }
    assert_eq!(
        object["Effect"], "Allow",
        "{function}: only Allow statements"
    );
    let mut conditions = Vec::new();
    if let Some(block) = object.get("Condition").and_then(Value::as_object) {
        for (operator, keys) in block {
            for (key, values) in keys.as_object().expect("condition keys") {
                conditions.push(Clause {
                    operator: operator.clone(),
                    key: key.clone(),
                    values: strings(values, key),
                });
            }
        }
    }
    Statement {
        actions: strings(&object["Action"], "Action"),
        resources: strings(&object["Resource"], "Resource"),
        conditions,
    }
}

/// Resolves intrinsic functions to plain JSON; `AWS::NoValue` becomes `null` and is dropped
/// from lists and mappings.
struct Resolver<'a> {
    template: &'a Yaml,
    deployment: &'a Deployment,
}

impl Resolver<'_> {
    fn resolve(&self, value: &Yaml) -> Value {
        match value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => json!(b),
            Yaml::Number(n) => json!(n.to_string()),
            Yaml::String(s) => json!(s),
            Yaml::Sequence(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v))
                    .filter(|v| !v.is_null())
                    .collect(),
            ),
            Yaml::Mapping(mapping) => {
                let mut object = Map::new();
                for (key, value) in mapping {
                    let key = key.as_str().expect("mapping key").to_string();
                    if let Some(function) = key
                        .strip_prefix("Fn::")
                        .or(Some("Ref").filter(|_| key == "Ref"))
                    {
                        return self.intrinsic(function, value);
                    }
                    let value = self.resolve(value);
                    if !value.is_null() {
                        object.insert(key, value);
                    }
                }
                Value::Object(object)
            }
            Yaml::Tagged(tagged) => self.intrinsic(
                tagged.tag.to_string().trim_start_matches('!'),
                &tagged.value,
            ),
        }
    }

    fn intrinsic(&self, function: &str, argument: &Yaml) -> Value {
        let list = || -> Vec<Value> {
            match self.resolve(argument) {
                Value::Array(items) => items,
                other => panic!("!{function} takes a list, found {other}"),
            }
        };
        match function {
            "Ref" => self.reference(argument.as_str().expect("!Ref name")),
            "GetAtt" => {
                let target = match argument {
                    Yaml::String(s) => s.clone(),
                    other => strings(&self.resolve(other), "GetAtt").join("."),
                };
                self.attribute(&target)
            }
            "Sub" => match argument {
                Yaml::String(text) => json!(self.substitute(text, &Map::new())),
                Yaml::Sequence(parts) => {
                    let text = parts[0].as_str().expect("!Sub text");
                    let vars = self.resolve(&parts[1]);
                    json!(self.substitute(text, vars.as_object().expect("!Sub variables")))
                }
                other => panic!("!Sub argument {other:?}"),
            },
            "If" => {
                let Yaml::Sequence(parts) = argument else {
                    panic!("!If takes [condition, then, else]")
                };
                let name = parts[0].as_str().expect("!If condition name");
                self.resolve(&parts[if self.condition(name) { 1 } else { 2 }])
            }
            "Equals" => {
                let items = list();
                json!(items[0] == items[1])
            }
            "Not" => json!(!list()[0].as_bool().expect("!Not of a condition")),
            "And" => json!(list().iter().all(|v| v.as_bool() == Some(true))),
            "Or" => json!(list().iter().any(|v| v.as_bool() == Some(true))),
            "Join" => {
                let items = list();
                let separator = items[0].as_str().unwrap_or("").to_string();
                json!(strings(&items[1], "Join").join(&separator))
            }
            "Condition" => json!(self.condition(argument.as_str().expect("condition name"))),
            other => panic!("the IAM test does not evaluate !{other}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let definition = &self.template["Conditions"][name];
        self.resolve(definition)
            .as_bool()
            .unwrap_or_else(|| panic!("condition {name} is not a boolean"))
    }

    fn reference(&self, name: &str) -> Value {
        match name {
            "AWS::NoValue" => Value::Null,
            "AWS::Partition" => json!("aws"),
            "AWS::Region" => json!(REGION),
            "AWS::AccountId" => json!(ACCOUNT),
            "AWS::URLSuffix" => json!("amazonaws.com"),
            "Table" => json!(self.deployment.table_name),
            // The pipeline events bus of a stack named after its table (`EventBus.Arn` below).
            "EventBus" => json!(format!("{}-pipeline-events", self.deployment.table_name)),
            parameter => {
                let declared = &self.template["Parameters"][parameter];
                assert!(
                    !declared.is_null(),
                    "!Ref {parameter}: not a parameter the IAM test can resolve"
                );
                let value = self
                    .deployment
                    .parameters
                    .get(parameter)
                    .cloned()
                    .or_else(|| yaml_scalar(&declared["Default"]))
                    .unwrap_or_default();
                if declared["Type"].as_str() == Some("CommaDelimitedList") {
                    json!(
                        value
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                    )
                } else {
                    json!(value)
                }
            }
        }
    }

    fn attribute(&self, target: &str) -> Value {
        match target {
            "Table.Arn" => json!(table_arn(&self.deployment.table_name)),
            // The stack of the IAM tests is named after its table.
            "EventBus.Arn" => json!(crate::aws_recorder::event_bus_arn(&format!(
                "{}-pipeline-events",
                self.deployment.table_name
            ))),
            other => panic!("!GetAtt {other}: not resolved by the IAM test"),
        }
    }

    fn substitute(&self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing } in !Sub") + start;
            let name = &rest[start + 2..end];
            let value = match vars.get(name) {
                Some(value) => value.clone(),
                None if name.contains('.') && !name.starts_with("AWS::") => self.attribute(name),
                None => self.reference(name),
            };
            out.push_str(
                value
                    .as_str()
                    .unwrap_or_else(|| panic!("${{{name}}} is not a string")),
            );
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn yaml_scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A function's environment as the template sets it (`Globals` then the function's own),
/// resolved with the parameters' defaults and `table_name` for the table.
pub fn function_environment(
    template: &Yaml,
    table_name: &str,
    binary: &str,
) -> Vec<(String, String)> {
    let deployment = Deployment {
        table_name: table_name.to_string(),
        parameters: BTreeMap::new(),
    };
    let resolver = Resolver {
        template,
        deployment: &deployment,
    };
    let function = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .values()
        .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
        .unwrap_or_else(|| panic!("no function runs the binary {binary}"));
    let mut variables = BTreeMap::new();
    for block in [
        &template["Globals"]["Function"]["Environment"]["Variables"],
        &function["Properties"]["Environment"]["Variables"],
    ] {
        if let Value::Object(resolved) = resolver.resolve(block) {
            for (name, value) in resolved {
                let value = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                variables.insert(name, value);
            }
        }
    }
    variables.into_iter().collect()
}
