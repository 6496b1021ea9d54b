//! Block Kit cards for action runs: the approval card with its buttons,
//! and the same card once decided, running, finished or expired.

use slack_morphism::prelude::*;

use super::mrkdwn::escape_mrkdwn;
use crate::store::action_runs::{ActionRun, RunStatus};

/// `action_id` of the Approve button.
pub const APPROVE: &str = "action_approve";
/// `action_id` of the Reject button.
pub const REJECT: &str = "action_reject";

/// Section fields per block; Slack allows 10.
const MAX_FIELDS: usize = 10;

/// Characters Slack accepts in a section's text or a context element.
const MAX_TEXT_CHARS: usize = 3000;

/// Characters Slack accepts in one section field.
const MAX_FIELD_CHARS: usize = 2000;

/// Blocks Slack accepts in one message.
const MAX_BLOCKS: usize = 50;

/// Blocks of a card besides its details: the heading, the context line,
/// and the buttons or the status line.
const FRAME_BLOCKS: usize = 3;

/// The card for a run waiting for approval, with its text fallback.
pub fn approval_card(
    run: &ActionRun,
    action_title: &str,
    approvers: &str,
) -> (String, Vec<SlackBlock>) {
    let fallback = format!(
        "Approval needed: {} requested by <@{}>",
        action_title, run.requester
    );
    let mut blocks = vec![heading(&format!(
        ":raised_hand: *Approval needed:* {}",
        escape_mrkdwn(action_title)
    ))];
    blocks.extend(details(run));
    blocks.push(context(&format!(
        "Requested by <@{}> · approvers: {approvers} · run `{}`",
        run.requester, run.id
    )));
    blocks.push(buttons(&run.id));
    (fallback, blocks)
}

/// The card once the run left `waiting_for_approval`: no buttons, and a
/// line saying what happened.
pub fn settled_card(run: &ActionRun, action_title: &str) -> (String, Vec<SlackBlock>) {
    let status = status_line(run);
    let fallback = format!("{action_title}: {}", strip_mrkdwn(&status));
    let mut blocks = vec![heading(&format!("*{}*", escape_mrkdwn(action_title)))];
    blocks.extend(details(run));
    blocks.push(text_block(&status));
    blocks.push(context(&format!(
        "Requested by <@{}> · run `{}`",
        run.requester, run.id
    )));
    (fallback, blocks)
}

/// Says where a run is, in mrkdwn.
pub fn status_line(run: &ActionRun) -> String {
    let decider = run
        .decider
        .as_deref()
        .map(|decider| {
            if decider == "automatic" {
                "automatically".to_string()
            } else {
                format!("by <@{decider}>")
            }
        })
        .unwrap_or_default();
    let when = |millis: Option<i64>| millis.map(utc_time).unwrap_or_default();
    let result = || {
        let mut line = run
            .summary
            .clone()
            .map(|summary| escape_mrkdwn(&summary))
            .unwrap_or_default();
        if let Some(link) = &run.link {
            line.push_str(&format!(" · <{}|view run>", link_target(link)));
        }
        line
    };
    match run.status {
        RunStatus::WaitingForApproval => "Waiting for approval".to_string(),
        RunStatus::Rejected => format!(":no_entry: Rejected {decider} at {}", when(run.decided_at)),
        RunStatus::Expired => format!(
            ":hourglass: Expired at {} with no decision",
            when(run.finished_at)
        ),
        RunStatus::InProgress => format!(
            ":arrows_counterclockwise: Approved {decider} at {} · running…",
            when(run.decided_at)
        ),
        RunStatus::Success => format!(
            ":white_check_mark: Approved {decider} at {} · succeeded: {}",
            when(run.decided_at),
            result()
        ),
        RunStatus::Failure => format!(
            ":x: Approved {decider} at {} · failed: {}",
            when(run.decided_at),
            result()
        ),
    }
}

/// Writes a URL for a mrkdwn link. The link comes from the executor's
/// server: a `|` would end the URL and start the link's text, and `<` or
/// `>` would start or end a mention, so they are percent-encoded, and `&`
/// is escaped as Slack expects.
fn link_target(url: &str) -> String {
    url.replace('&', "&amp;")
        .replace('|', "%7C")
        .replace('<', "%3C")
        .replace('>', "%3E")
}

fn heading(mrkdwn: &str) -> SlackBlock {
    text_block(mrkdwn)
}

fn text_block(mrkdwn: &str) -> SlackBlock {
    SlackSectionBlock::new()
        .with_text(md!("{}", fit(mrkdwn, MAX_TEXT_CHARS)))
        .into()
}

fn context(mrkdwn: &str) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(fit(mrkdwn, MAX_TEXT_CHARS)),
    )])
    .into()
}

/// Builds the target and each input as section fields. Slack rejects a whole
/// message when one field or the block count is over its limits, so long
/// values are cut and inputs beyond what fits are counted instead.
fn details(run: &ActionRun) -> Vec<SlackBlock> {
    let mut fields: Vec<String> = Vec::new();
    if let Some(target) = &run.target_ref {
        let shown = match &run.target_title {
            Some(title) if !title.is_empty() => {
                format!("{} (`{}`)", escape_mrkdwn(title), escape_mrkdwn(target))
            }
            _ => format!("`{}`", escape_mrkdwn(target)),
        };
        fields.push(format!("*Target*\n{shown}"));
    }
    for (name, value) in &run.inputs {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        fields.push(format!(
            "*{}*\n{}",
            escape_mrkdwn(name),
            escape_mrkdwn(&text)
        ));
    }

    let room = (MAX_BLOCKS - FRAME_BLOCKS) * MAX_FIELDS;
    if fields.len() > room {
        let hidden = fields.len() - (room - 1);
        fields.truncate(room - 1);
        fields.push(format!(
            "*More inputs*\n{hidden} more are not shown; `agentdesk runs list --json` lists \
             every input of run `{}`",
            run.id
        ));
    }
    fields
        .chunks(MAX_FIELDS)
        .map(|chunk| {
            let texts: Vec<SlackBlockText> = chunk
                .iter()
                .map(|field| md!("{}", fit(field, MAX_FIELD_CHARS)))
                .collect();
            SlackSectionBlock::new().with_fields(texts).into()
        })
        .collect()
}

/// Cuts mrkdwn to at most `max` characters, ending with `…`. The cut
/// never leaves half an entity (`&amp;`) or half a `<...>` token
/// (a mention or a link), which Slack would show as broken text.
fn fit(mrkdwn: &str, max: usize) -> String {
    let Some((cut, _)) = mrkdwn.char_indices().nth(max) else {
        return mrkdwn.to_string();
    };
    // One character is left for the ellipsis.
    let cut = mrkdwn[..cut]
        .char_indices()
        .next_back()
        .map_or(0, |(index, _)| index);
    let mut kept = &mrkdwn[..cut];
    if let Some(open) = kept.rfind('&')
        && !kept[open..].contains(';')
    {
        kept = &kept[..open];
    }
    if let Some(open) = kept.rfind('<')
        && !kept[open..].contains('>')
    {
        kept = &kept[..open];
    }
    format!("{kept}…")
}

fn buttons(run_id: &str) -> SlackBlock {
    let approve = SlackBlockButtonElement::new(pt!("Approve"))
        .with_action_id(APPROVE.into())
        .with_value(run_id.to_string())
        .with_style(SlackBlockButtonStyle::Primary);
    let reject = SlackBlockButtonElement::new(pt!("Reject"))
        .with_action_id(REJECT.into())
        .with_value(run_id.to_string())
        .with_style(SlackBlockButtonStyle::Danger);
    SlackActionsBlock::new(vec![
        SlackActionBlockElement::Button(approve),
        SlackActionBlockElement::Button(reject),
    ])
    .with_block_id(format!("run-{run_id}").into())
    .into()
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_time(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|time| time.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| millis.to_string())
}

/// A plain version of a status line for notification text.
fn strip_mrkdwn(text: &str) -> String {
    text.split_whitespace()
        .filter(|word| !(word.starts_with(':') && word.ends_with(':')))
        .collect::<Vec<_>>()
        .join(" ")
        .replace('*', "")
}
