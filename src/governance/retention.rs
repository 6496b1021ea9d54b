//! Retention of invocations.

/// How long invocations are kept and how much of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub days: u32,
    pub metadata_only: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            days: 30,
            metadata_only: false,
        }
    }
}
