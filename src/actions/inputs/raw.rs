//! The `inputs:` mapping as serde-saphyr reads it: a loose tree of YAML
//! nodes that keeps mapping order and the location of every key and value.
//!
//! Nothing here rejects a wrongly typed value. An input written as a
//! string, a `min_length` given as text and an unknown key all deserialize,
//! so `parse` can report each of them with its line. Serde would stop at
//! the first.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use serde_saphyr::Spanned;

/// The `inputs:` mapping of an action, as written: input names to their
/// definitions, in file order. An empty value (`inputs:`) reads as no
/// inputs. Check it with [`super::InputSchema::from_raw`].
#[derive(Debug, Clone, Default)]
pub struct RawInputs {
    pub(super) entries: Vec<RawEntry>,
}

impl RawInputs {
    /// Reads the `inputs:` value of an action read as a node: a mapping,
    /// or nothing for no inputs. Returns the kind of node found otherwise.
    pub(crate) fn from_node(node: &RawNode) -> Result<RawInputs, &'static str> {
        match node {
            RawNode::Null => Ok(RawInputs::default()),
            RawNode::Map(entries) => Ok(RawInputs {
                entries: entries.clone(),
            }),
            other => Err(other.kind()),
        }
    }
}

/// A mapping key with its location, and its value.
pub(crate) type RawEntry = (Spanned<String>, Spanned<RawNode>);

/// One YAML node.
#[derive(Debug, Clone)]
pub(crate) enum RawNode {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Spanned<RawNode>>),
    Map(Vec<RawEntry>),
}

impl RawNode {
    /// Names the kind of node, for messages: "a number", "a list".
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RawNode::Null => "nothing",
            RawNode::Bool(_) => "a boolean",
            RawNode::Number(_) => "a number",
            RawNode::String(_) => "a string",
            RawNode::List(_) => "a list",
            RawNode::Map(_) => "a mapping",
        }
    }

    /// Converts the node to JSON. Mapping keys come out sorted, because
    /// `serde_json::Map` sorts them.
    pub(super) fn to_json(&self) -> Value {
        match self {
            RawNode::Null => Value::Null,
            RawNode::Bool(flag) => Value::Bool(*flag),
            RawNode::Number(number) => Value::Number(number.clone()),
            RawNode::String(text) => Value::String(text.clone()),
            RawNode::List(items) => {
                Value::Array(items.iter().map(|item| item.value.to_json()).collect())
            }
            RawNode::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.value.clone(), value.value.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for RawInputs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InputsVisitor;

        impl<'de> Visitor<'de> for InputsVisitor {
            type Value = RawInputs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of input names to input definitions")
            }

            fn visit_unit<E: de::Error>(self) -> Result<RawInputs, E> {
                Ok(RawInputs::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<RawInputs, E> {
                Ok(RawInputs::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawInputs, A::Error> {
                Ok(RawInputs {
                    entries: read_entries(map)?,
                })
            }
        }

        deserializer.deserialize_any(InputsVisitor)
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<RawNode, E> {
        Ok(RawNode::Number(number.into()))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<RawNode, E> {
        Ok(RawNode::Number(number.into()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<RawNode, E> {
        // serde-saphyr rejects `.inf` and `.nan` by default; should one get
        // through, the value fails later as "a string" rather than panicking.
        Ok(Number::from_f64(number)
            .map(RawNode::Number)
            .unwrap_or_else(|| RawNode::String(number.to_string())))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawNode, E> {
        Ok(RawNode::String(text.to_string()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<RawNode, E> {
        Ok(RawNode::String(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawNode, A::Error> {
        Ok(RawNode::Map(read_entries(map)?))
    }
}

/// Reads a mapping in order. serde-saphyr rejects duplicate keys itself
/// (its default `DuplicateKeyPolicy::Error`).
fn read_entries<'de, A: MapAccess<'de>>(mut map: A) -> Result<Vec<RawEntry>, A::Error> {
    let mut entries = Vec::new();
    while let Some(key) = map.next_key::<Spanned<String>>()? {
        let value = map.next_value::<Spanned<RawNode>>()?;
        entries.push((key, value));
    }
    Ok(entries)
}
