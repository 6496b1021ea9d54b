//! Answer feedback.

use anyhow::Result;

use super::Store;
use crate::clock::SharedClock;

/// A thumbs up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Up,
    Down,
}

/// What a click changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteChange {
    New,
    Changed,
    Same,
}

pub async fn record_vote(
    _store: &Store,
    _clock: &SharedClock,
    _invocation_id: &str,
    _user_id: &str,
    _vote: Vote,
) -> Result<VoteChange> {
    Ok(VoteChange::New)
}
