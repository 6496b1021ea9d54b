//! Posting an answer: Markdown to mrkdwn, split under Slack's limits, one
//! message per chunk in the question's thread, each chunk a section block
//! with the same text as notification fallback. The last message names the
//! agent that answered and, for a completed answer, carries the feedback
//! buttons.

use anyhow::Result;
use slack_morphism::prelude::SlackBlock;

use super::blocks::{answered_by, feedback_buttons, text_section};
use super::client::SlackApi;
use super::mrkdwn::markdown_to_mrkdwn;
use super::split::{MAX_SECTION_TEXT_CHARS, split_message};

/// What the last message of an answer carries below the text.
#[derive(Debug, Clone)]
pub struct Footer {
    pub agent_title: String,
    pub invocation_id: String,
    pub with_feedback: bool,
}

/// Posts an answer written in Markdown into a thread, in order; returns the
/// timestamps of the posted messages.
pub async fn post_answer(
    api: &SlackApi,
    channel: &str,
    thread_ts: &str,
    markdown: &str,
    max_chars: usize,
    footer: Option<&Footer>,
) -> Result<Vec<String>> {
    let mrkdwn = markdown_to_mrkdwn(markdown);
    let chunks = split_message(&mrkdwn, max_chars.min(MAX_SECTION_TEXT_CHARS));
    let last = chunks.len().saturating_sub(1);

    let mut posted = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let mut blocks: Vec<SlackBlock> = vec![text_section(chunk)];
        if index == last
            && let Some(footer) = footer
        {
            blocks.push(answered_by(&footer.agent_title, &footer.invocation_id));
            if footer.with_feedback {
                blocks.push(feedback_buttons(&footer.invocation_id));
            }
        }
        posted.push(
            api.post_in_thread(channel, thread_ts, chunk, blocks)
                .await?,
        );
    }
    Ok(posted)
}
