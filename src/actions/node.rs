//! Typed reading of an action's YAML, with the place of every mistake.
//!
//! An action entry is read from the agents file as a tree of YAML nodes
//! that keep their line and column ([`RawNode`]); nothing in it can fail
//! on a wrongly typed value. [`read`] then deserializes one part of the
//! entry, such as `approval`, into its type. A wrongly typed, unknown or
//! missing value is reported with its own line and column and its dotted
//! field (`executor.timeout_secs`), where deserializing the whole file at
//! once stops at the first mistake, and names only the line.
//!
//! Scalars are read as loosely as serde-saphyr reads them: a number or a
//! boolean where text is expected becomes its text, and a quoted number or
//! boolean is accepted where one is expected. A number's text is its
//! value as parsed, so `1.10` becomes `1.1`.

use std::fmt;
use std::slice;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::Number;
use serde_saphyr::{Location, Spanned};

use super::inputs::raw::{RawEntry, RawNode};

/// A value that could not be read: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeError {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// Dotted path of the value, such as `executor.timeout_secs`.
    pub field: String,
    pub message: String,
    /// Whether the innermost node has set the place already; the nodes
    /// around it leave it alone.
    is_placed: bool,
}

impl NodeError {
    /// Creates an error about the node at `at`.
    pub(crate) fn at(at: &Location, field: &str, message: impl Into<String>) -> Self {
        let known = at.line() > 0;
        Self {
            line: known.then(|| at.line()),
            column: known.then(|| at.column()),
            field: field.to_string(),
            message: message.into(),
            is_placed: true,
        }
    }

    fn place(self, at: &Location, field: &str) -> Self {
        if self.is_placed {
            return self;
        }
        Self::at(at, field, self.message)
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for NodeError {}

impl de::Error for NodeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self {
            line: None,
            column: None,
            field: String::new(),
            message: message.to_string(),
            is_placed: false,
        }
    }
}

/// Deserializes `node`, whose dotted path is `field`, into `T`.
pub(crate) fn read<T: DeserializeOwned>(
    node: &Spanned<RawNode>,
    field: &str,
) -> Result<T, NodeError> {
    T::deserialize(Node {
        node,
        field: field.to_string(),
    })
}

/// Returns the path of `key` inside `parent`.
fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// One node and its path.
struct Node<'a> {
    node: &'a Spanned<RawNode>,
    field: String,
}

impl Node<'_> {
    fn place<T>(&self, result: Result<T, NodeError>) -> Result<T, NodeError> {
        result.map_err(|error| error.place(&self.node.referenced, &self.field))
    }

    /// Text of a scalar node, for a type that expects text.
    fn scalar_text(&self) -> Option<String> {
        match &self.node.value {
            RawNode::String(text) => Some(text.clone()),
            RawNode::Number(number) => Some(number.to_string()),
            RawNode::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// A number written as quoted text, for a type that expects a number.
    fn quoted_number(&self) -> Option<Number> {
        match &self.node.value {
            RawNode::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.quoted_number() {
            Some(number) => {
                let result = visit_number(&number, visitor);
                self.place(result)
            }
            None => self.deserialize_any(visitor),
        }
    }
}

fn visit_number<'de, V: Visitor<'de>>(number: &Number, visitor: V) -> Result<V::Value, NodeError> {
    if let Some(whole) = number.as_u64() {
        visitor.visit_u64(whole)
    } else if let Some(whole) = number.as_i64() {
        visitor.visit_i64(whole)
    } else {
        visitor.visit_f64(number.as_f64().unwrap_or(f64::NAN))
    }
}

macro_rules! numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
            self.number(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Node<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let result = match &self.node.value {
            RawNode::Null => visitor.visit_unit(),
            RawNode::Bool(flag) => visitor.visit_bool(*flag),
            RawNode::Number(number) => visit_number(number, visitor),
            RawNode::String(text) => visitor.visit_str(text),
            RawNode::List(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                field: &self.field,
            }),
            RawNode::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                current: None,
                field: &self.field,
            }),
        };
        self.place(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        if matches!(self.node.value, RawNode::Null) {
            let result = visitor.visit_none();
            return self.place(result);
        }
        visitor.visit_some(self)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        match self.scalar_text() {
            Some(text) => {
                let result = visitor.visit_string(text);
                self.place(result)
            }
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        let quoted = match &self.node.value {
            RawNode::String(text) => match text.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match quoted {
            Some(flag) => {
                let result = visitor.visit_bool(flag);
                self.place(result)
            }
            None => self.deserialize_any(visitor),
        }
    }

    numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_f32 deserialize_f64
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct enum identifier
    }
}

/// The items of a list.
struct Items<'a> {
    items: std::iter::Enumerate<slice::Iter<'a, Spanned<RawNode>>>,
    field: &'a str,
}

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = NodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NodeError> {
        let Some((index, item)) = self.items.next() else {
            return Ok(None);
        };
        let node = Node {
            node: item,
            field: format!("{}[{index}]", self.field),
        };
        seed.deserialize(node).map(Some)
    }
}

/// The entries of a mapping.
struct Entries<'a> {
    entries: slice::Iter<'a, RawEntry>,
    /// The entry whose key was read last and whose value is next.
    current: Option<&'a RawEntry>,
    field: &'a str,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = NodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NodeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        let key = Key {
            key: &entry.0,
            field: child(self.field, &entry.0.value),
        };
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, NodeError> {
        let Some((key, value)) = self.current.take() else {
            return Err(de::Error::custom("a mapping value was read before its key"));
        };
        seed.deserialize(Node {
            node: value,
            field: child(self.field, &key.value),
        })
    }
}

/// A mapping key: an unknown field is reported at the key.
struct Key<'a> {
    key: &'a Spanned<String>,
    field: String,
}

impl<'de> Deserializer<'de> for Key<'_> {
    type Error = NodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NodeError> {
        visitor
            .visit_str(&self.key.value)
            .map_err(|error: NodeError| error.place(&self.key.referenced, &self.field))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}
