//! Redaction of secrets and e-mail addresses.

/// What redaction replaces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionSettings {
    pub secrets: bool,
    pub emails: bool,
}

impl Default for RedactionSettings {
    fn default() -> Self {
        Self {
            secrets: true,
            emails: false,
        }
    }
}

/// Replaces secrets in text.
#[derive(Debug, Clone)]
pub struct Redactor;

impl Redactor {
    pub fn new(_settings: &RedactionSettings) -> Self {
        Self
    }

    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(text)
    }
}
