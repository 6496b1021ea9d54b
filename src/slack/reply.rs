//! Posting an answer: Markdown to mrkdwn, split under Slack's limits, one
//! message per chunk in the question's thread.

use anyhow::Result;

use super::client::SlackApi;
use super::mrkdwn::markdown_to_mrkdwn;
use super::split::split_message;

/// Posts an answer written in Markdown into a thread, in order; returns the
/// timestamps of the posted messages.
pub async fn post_answer(
    api: &SlackApi,
    channel: &str,
    thread_ts: &str,
    markdown: &str,
    max_chars: usize,
) -> Result<Vec<String>> {
    let mrkdwn = markdown_to_mrkdwn(markdown);
    let mut posted = Vec::new();
    for chunk in split_message(&mrkdwn, max_chars) {
        posted.push(api.post_in_thread(channel, thread_ts, &chunk).await?);
    }
    Ok(posted)
}
