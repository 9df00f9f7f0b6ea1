//! Flow variables: what a call knows (caller input, action outputs, call
//! facts), each either plain or [`Secret`].
//!
//! Plain values may be logged and templated anywhere; secret values only into
//! the request of an action marked `secure: true` (see `template`).

use std::collections::BTreeMap;
use std::fmt;

use crate::secret::Secret;

#[derive(Clone, PartialEq)]
pub enum Value {
    Plain(String),
    Secret(Secret),
}

impl Value {
    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    /// The plain string, or `None` for a secret.
    pub fn as_plain(&self) -> Option<&str> {
        match self {
            Value::Plain(s) => Some(s),
            Value::Secret(_) => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(s) => write!(f, "{s:?}"),
            Value::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

/// The variables of one call. Ordered so that transcripts and dumps are
/// deterministic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vars {
    map: BTreeMap<String, Value>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_plain(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.insert(name.into(), Value::Plain(value.into()));
    }

    pub fn set_secret(&mut self, name: impl Into<String>, value: Secret) {
        self.map.insert(name.into(), Value::Secret(value));
    }

    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.map.insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    pub fn plain(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_plain)
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.map.iter()
    }
}
