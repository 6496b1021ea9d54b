//! Block Kit pieces of the bot's messages, each built by one small
//! function.

use slack_morphism::prelude::*;

/// `action_id` of the thumbs-up feedback button.
pub const FEEDBACK_UP: &str = "feedback_up";
/// `action_id` of the thumbs-down feedback button.
pub const FEEDBACK_DOWN: &str = "feedback_down";

/// A section with mrkdwn text (at most 3,000 characters).
pub fn text_section(mrkdwn: &str) -> SlackBlock {
    SlackSectionBlock::new().with_text(md!("{}", mrkdwn)).into()
}

/// A context line naming the agent that answered and the invocation.
pub fn answered_by(agent_title: &str, invocation_id: &str) -> SlackBlock {
    let line = format!(
        "Answered by *{}* · invocation `{invocation_id}`",
        super::mrkdwn::escape_mrkdwn(agent_title)
    );
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(line),
    )])
    .into()
}

/// Thumbs up and down buttons whose value is the invocation id.
pub fn feedback_buttons(invocation_id: &str) -> SlackBlock {
    let button = |action_id: &str, label: &str| {
        SlackActionBlockElement::Button(
            SlackBlockButtonElement::new(pt!("{}", label))
                .with_action_id(action_id.into())
                .with_value(invocation_id.to_string()),
        )
    };
    SlackActionsBlock::new(vec![
        button(FEEDBACK_UP, ":+1: Helpful"),
        button(FEEDBACK_DOWN, ":-1: Not helpful"),
    ])
    .with_block_id(format!("feedback-{invocation_id}").into())
    .into()
}
