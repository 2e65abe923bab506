//! Write conditions and in-place updates, in a form both adapters understand.
//!
//! The DynamoDB adapter renders these into condition/update expressions; the embedded adapter
//! evaluates them directly with [`Condition::holds`] and [`Update::apply`].

use std::cmp::Ordering;

use serde_json::Value;

use super::{Item, PK};

/// A condition on the item currently stored under the written key (absent item = `None`).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The item exists (`attribute_exists(PK)`).
    Exists,
    /// No item is stored under the key (`attribute_not_exists(PK)`).
    NotExists,
    /// The attribute exists and equals the value.
    Equals(String, Value),
    /// The attribute exists and is less than the value (numbers numerically, strings bytewise).
    LessThan(String, Value),
    /// The attribute is absent.
    AttributeNotExists(String),
    And(Vec<Condition>),
    Or(Vec<Condition>),
}

impl Condition {
    pub fn equals(attribute: &str, value: impl Into<Value>) -> Self {
        Condition::Equals(attribute.to_string(), value.into())
    }

    /// Evaluates the condition against the current item.
    pub fn holds(&self, current: Option<&Item>) -> bool {
        match self {
            Condition::Exists => current.is_some_and(|item| item.contains_key(PK)),
            Condition::NotExists => !current.is_some_and(|item| item.contains_key(PK)),
            Condition::Equals(name, value) => {
                attribute(current, name).is_some_and(|v| compare(v, value) == Some(Ordering::Equal))
            }
            Condition::LessThan(name, value) => {
                attribute(current, name).is_some_and(|v| compare(v, value) == Some(Ordering::Less))
            }
            Condition::AttributeNotExists(name) => attribute(current, name).is_none(),
            Condition::And(all) => all.iter().all(|c| c.holds(current)),
            Condition::Or(any) => any.iter().any(|c| c.holds(current)),
        }
    }
}

fn attribute<'a>(item: Option<&'a Item>, name: &str) -> Option<&'a Value> {
    item.and_then(|item| item.get(name))
}

/// DynamoDB comparison semantics: numbers numerically, strings by bytes, booleans and nulls
/// only for equality; values of different types never compare.
fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
                Some(a.cmp(&b))
            } else {
                a.as_f64()?.partial_cmp(&b.as_f64()?)
            }
        }
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) if a == b => Some(Ordering::Equal),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    }
}

/// An in-place update: `SET` attributes, `REMOVE` attributes, `ADD` to numeric counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    pub set: Vec<(String, Value)>,
    pub remove: Vec<String>,
    /// Adds to a number attribute (a missing attribute counts as 0).
    pub add: Vec<(String, i64)>,
}

impl Update {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set.push((name.to_string(), value.into()));
        self
    }

    /// Sets the attribute, or removes it when the value is JSON null (DynamoDB keeps explicit
    /// NULLs, but absent and null mean the same thing to every reader here).
    pub fn set_or_remove(self, name: &str, value: impl Into<Value>) -> Self {
        match value.into() {
            Value::Null => self.remove(name),
            value => self.set(name, value),
        }
    }

    pub fn remove(mut self, name: &str) -> Self {
        self.remove.push(name.to_string());
        self
    }

    pub fn add(mut self, name: &str, delta: i64) -> Self {
        self.add.push((name.to_string(), delta));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies the update to an item (the embedded adapter's implementation).
    pub fn apply(&self, item: &mut Item) {
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        for name in &self.remove {
            item.remove(name);
        }
        for (name, delta) in &self.add {
            let current = item.get(name);
            let next = match (
                current.and_then(Value::as_i64),
                current.and_then(Value::as_f64),
            ) {
                (Some(int), _) => Value::from(int.saturating_add(*delta)),
                // A non-integral number (DynamoDB numbers are decimals, not integers).
                (None, Some(float)) => Value::from(float + *delta as f64),
                (None, None) => Value::from(*delta),
            };
            item.insert(name.clone(), next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Item {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn conditions_follow_dynamodb_semantics() {
        let current = item(json!({"PK": "a", "SK": "b", "version": 3, "name": "x"}));
        assert!(Condition::Exists.holds(Some(&current)));
        assert!(!Condition::Exists.holds(None));
        assert!(Condition::NotExists.holds(None));
        assert!(Condition::equals("version", 3).holds(Some(&current)));
        assert!(!Condition::equals("version", "3").holds(Some(&current)));
        assert!(Condition::LessThan("version".into(), json!(4)).holds(Some(&current)));
        assert!(!Condition::LessThan("missing".into(), json!(4)).holds(Some(&current)));
        assert!(Condition::AttributeNotExists("missing".into()).holds(Some(&current)));
        let either = Condition::Or(vec![Condition::NotExists, Condition::equals("name", "y")]);
        assert!(!either.holds(Some(&current)));
        assert!(either.holds(None));
    }

    #[test]
    fn update_sets_removes_and_adds() {
        let mut current = item(json!({"PK": "a", "SK": "b", "n": 1, "gone": true}));
        Update::new()
            .set("name", "z")
            .remove("gone")
            .add("n", 2)
            .add("fresh", 5)
            .apply(&mut current);
        assert_eq!(
            Value::Object(current),
            json!({"PK": "a", "SK": "b", "n": 3, "name": "z", "fresh": 5})
        );
    }
}
