//! Redaction of secrets and e-mail addresses.
