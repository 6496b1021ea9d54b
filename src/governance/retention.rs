//! Retention of invocations.
