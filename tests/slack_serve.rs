//! The real `serve` loop against the stand-in Slack: which events get an
//! answer, where it lands, and what is never answered.

use std::time::Duration;

use agentdesk::store::invocations::{self, Status};
use agentdesk_standins::Reply;
use agentdesk_standins::openai::OpenAiStandin;
use agentdesk_standins::slack::{SlackStandin, as_redelivery, with_fresh_ids};
use serde_json::{Value, json};

use crate::helpers::bot::{RunningBot, WAIT, block_text, start_bot};
use crate::helpers::{TestDatabase, on_both_databases_with_demo, slack_fixture};

on_both_databases_with_demo!(
    mention_gets_one_reply_in_its_thread,
    direct_message_gets_a_reply,
    retried_event_gets_no_second_reply,
    message_and_mention_twins_get_one_reply,
    bots_edits_and_deletions_get_no_reply,
    ignored_edit_does_not_hide_the_original_question,
    mention_with_empty_edited_object_is_answered,
    first_seen_redelivery_is_answered,
    same_question_after_restart_gets_no_second_reply,
    mention_in_a_thread_gives_the_model_earlier_turns,
    envelope_is_acked_while_a_slow_answer_runs,
    long_answer_is_split_under_the_limit,
    broadcast_in_model_output_is_neutralised,
    rate_limited_post_is_retried,
    shutdown_interrupts_an_answer_past_the_grace_period,
);

/// Starts a bot with the offline backend on `database`.
async fn offline_bot(database: &TestDatabase) -> RunningBot {
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    start_bot(slack, database.url(), &[]).await
}

async fn mention_gets_one_reply_in_its_thread(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    bot.send(slack_fixture("app_mention_envelope.json")).await;

    let posts = bot.slack.wait_for_posts(1, WAIT).await.expect("a reply");
    assert_eq!(posts[0].method, "chat.postMessage");
    assert_eq!(posts[0].channel, "C0CHAN0001");
    assert_eq!(posts[0].thread_ts.as_deref(), Some("1717171000.000100"));
    let blocks = block_text(&posts[0]);
    assert!(
        blocks.contains("Answered by *Catalog assistant*"),
        "the reply names the agent: {blocks}"
    );

    let invocations = invocations::recent(&bot.app.store, 10)
        .await
        .expect("invocations");
    assert_eq!(invocations.len(), 1);
    assert_eq!(invocations[0].status, Status::Completed);
    assert_eq!(invocations[0].user_id.as_deref(), Some("U0ALICE001"));
    assert_eq!(invocations[0].channel_id.as_deref(), Some("C0CHAN0001"));
    assert_eq!(
        invocations[0].thread_ts.as_deref(),
        Some("1717171000.000100")
    );
    assert_eq!(
        invocations[0].prompt,
        "can you check #deploys & tell me if incident 42 (https://status.example.com/incidents/42) is resolved? x < 5"
    );
    bot.stop().await;
}

async fn direct_message_gets_a_reply(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    bot.send(slack_fixture("message_im_envelope.json")).await;

    let posts = bot.slack.wait_for_posts(1, WAIT).await.expect("a reply");
    assert_eq!(posts[0].channel, "D0DMALICE1");
    assert_eq!(posts[0].thread_ts.as_deref(), Some("1717172000.123456"));
    bot.stop().await;
}

async fn retried_event_gets_no_second_reply(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    let mention = slack_fixture("app_mention_envelope.json");
    bot.send(mention.clone()).await;
    bot.slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("first reply");

    bot.send(slack_fixture("app_mention_retry_envelope.json"))
        .await;
    bot.send(as_redelivery(&mention, 2)).await;
    bot.barrier(2).await;
    bot.stop().await;
}

async fn message_and_mention_twins_get_one_reply(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    bot.send(slack_fixture("message_channel_with_mention_envelope.json"))
        .await;
    bot.send(slack_fixture("app_mention_envelope.json")).await;
    let posts = bot.barrier(2).await;
    let in_channel = posts
        .iter()
        .filter(|post| post.channel == "C0CHAN0001")
        .count();
    assert_eq!(in_channel, 1, "one answer for the twins: {posts:#?}");
    bot.stop().await;
}

async fn bots_edits_and_deletions_get_no_reply(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    for fixture in [
        "message_from_own_bot_envelope.json",
        "message_bot_message_subtype_envelope.json",
        "message_changed_envelope.json",
        "message_changed_unfurl_envelope.json",
        "message_changed_assistant_thread.json",
        "message_deleted_envelope.json",
        "app_mention_edited_envelope.json",
        "assistant_thread_started_envelope.json",
    ] {
        bot.send(slack_fixture(fixture)).await;
    }
    let posts = bot.barrier(1).await;
    assert_eq!(posts[0].channel, "D0DMALICE1");
    bot.stop().await;
}

async fn ignored_edit_does_not_hide_the_original_question(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    // The edit arrives first (same channel and ts); the original must still
    // be answered.
    bot.send(slack_fixture("app_mention_edited_envelope.json"))
        .await;
    bot.send(slack_fixture("app_mention_envelope.json")).await;
    let posts = bot
        .slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("the original is answered");
    assert_eq!(posts[0].thread_ts.as_deref(), Some("1717171000.000100"));
    bot.stop().await;
}

async fn mention_with_empty_edited_object_is_answered(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    let mut envelope = slack_fixture("app_mention_envelope.json");
    envelope["payload"]["event"]["edited"] = json!({});
    bot.send(envelope).await;
    let posts = bot.slack.wait_for_posts(1, WAIT).await.expect("a reply");
    assert_eq!(posts[0].channel, "C0CHAN0001");
    bot.stop().await;
}

async fn first_seen_redelivery_is_answered(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    // The first delivery was lost; the bot only ever sees retry number 1.
    bot.send(slack_fixture("app_mention_retry_envelope.json"))
        .await;
    bot.slack.wait_for_posts(1, WAIT).await.expect("a reply");
    bot.stop().await;
}

async fn same_question_after_restart_gets_no_second_reply(database: TestDatabase) {
    let first_slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let bot = start_bot(first_slack, database.url(), &[]).await;
    bot.send(slack_fixture("app_mention_envelope.json")).await;
    bot.slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("first reply");
    bot.stop().await;

    let second_slack = SlackStandin::start()
        .await
        .expect("stand-in Slack starts again");
    let bot = start_bot(second_slack, database.url(), &[]).await;
    let mut again = slack_fixture("app_mention_envelope.json");
    again["envelope_id"] = json!("0f0f0f0f-1111-4222-8333-444455556666");
    again["payload"]["event_id"] = json!("Ev0MENTIONNEW");
    bot.send(again).await;
    let posts = bot.barrier(1).await;
    assert_eq!(
        posts[0].channel, "D0DMALICE1",
        "only the barrier question is answered"
    );
    bot.stop().await;
}

/// A bot whose model is the OpenAI stand-in.
async fn model_bot(database: &TestDatabase, extra: &[(&str, &str)]) -> (RunningBot, OpenAiStandin) {
    let model = OpenAiStandin::start().await.expect("model stand-in starts");
    let slack = SlackStandin::start().await.expect("stand-in Slack starts");
    let base_url = model.base_url();
    let mut settings: Vec<(&str, &str)> = vec![
        ("AGENTDESK_BACKEND", "openai"),
        ("OPENAI_BASE_URL", base_url.as_str()),
        ("OPENAI_MODEL", "standin-model"),
    ];
    settings.extend_from_slice(extra);
    let bot = start_bot(slack, database.url(), &settings).await;
    (bot, model)
}

fn last_user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|message| message["role"] == "user")
        })
        .and_then(|message| message["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn mention_in_a_thread_gives_the_model_earlier_turns(database: TestDatabase) {
    let (bot, model) = model_bot(&database, &[]).await;
    model.push(Reply::Text(
        "The payments service is owned by Billing.".into(),
    ));
    model.push(Reply::Text("Billing's channel is #team-billing.".into()));

    let mut first = slack_fixture("app_mention_envelope.json");
    first["payload"]["event"]["text"] = json!("<@U0BOT00001> who owns payments?");
    bot.send(first).await;
    bot.slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("first answer");

    let mut second = with_fresh_ids(&slack_fixture("app_mention_envelope.json"));
    second["payload"]["event"]["text"] = json!("<@U0BOT00001> and what is their Slack channel?");
    second["payload"]["event"]["thread_ts"] = json!("1717171000.000100");
    bot.send(second).await;
    bot.slack
        .wait_for_posts(2, WAIT)
        .await
        .expect("second answer");

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1]["messages"].as_array().expect("messages");
    let texts: Vec<String> = messages
        .iter()
        .map(|message| message["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        texts.iter().any(|text| text == "who owns payments?"),
        "earlier question missing: {texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|text| text == "The payments service is owned by Billing."),
        "earlier answer missing: {texts:?}"
    );
    assert_eq!(
        last_user_text(&requests[1]),
        "and what is their Slack channel?"
    );
    bot.stop().await;
}

async fn envelope_is_acked_while_a_slow_answer_runs(database: TestDatabase) {
    let (bot, model) = model_bot(&database, &[]).await;
    model.push(Reply::Delayed(
        Duration::from_secs(3),
        Box::new(Reply::Text("slow".into())),
    ));
    model.push(Reply::Text("fast".into()));

    bot.send(slack_fixture("app_mention_envelope.json")).await;
    model
        .wait_for_requests(1, WAIT)
        .await
        .expect("the slow answer started");

    let second = with_fresh_ids(&slack_fixture("message_im_envelope.json"));
    let envelope_id = second["envelope_id"].as_str().unwrap().to_string();
    bot.slack.send_envelope(second).await.expect("sent");
    let ack = bot
        .slack
        .wait_for_ack(&envelope_id, WAIT)
        .await
        .expect("acked");
    assert!(
        ack.latency < Duration::from_millis(2_500),
        "ack took {:?}",
        ack.latency
    );

    let posts = bot
        .slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("the fast answer");
    assert_eq!(
        posts[0].text.as_deref(),
        Some("fast"),
        "the fast answer is not held up"
    );
    bot.slack
        .wait_for_posts(2, WAIT)
        .await
        .expect("the slow answer");
    bot.stop().await;
}

async fn long_answer_is_split_under_the_limit(database: TestDatabase) {
    let (bot, model) = model_bot(&database, &[]).await;
    let paragraph = "The checkout service talks to payments, pricing and inventory. ".repeat(20);
    let long_answer = vec![paragraph; 10].join("\n\n");
    model.push(Reply::Text(long_answer.clone()));

    bot.send(slack_fixture("message_im_envelope.json")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posts = bot
        .slack
        .wait_for_posts(2, WAIT)
        .await
        .expect("several messages");
    let total: usize = posts
        .iter()
        .map(|post| post.text.as_deref().unwrap_or("").chars().count())
        .sum();
    assert!(total >= long_answer.chars().count() - 40, "text was lost");
    for post in &posts {
        let length = post.text.as_deref().unwrap_or("").chars().count();
        assert!(length <= 3_900, "a message has {length} characters");
        assert_eq!(post.thread_ts.as_deref(), Some("1717172000.123456"));
    }
    bot.stop().await;
}

async fn broadcast_in_model_output_is_neutralised(database: TestDatabase) {
    let (bot, model) = model_bot(&database, &[]).await;
    model.push(Reply::Text(
        "<!channel> the **payments** service is down".into(),
    ));
    bot.send(slack_fixture("message_im_envelope.json")).await;
    let posts = bot.slack.wait_for_posts(1, WAIT).await.expect("a reply");
    let text = posts[0].text.clone().unwrap_or_default();
    assert!(!text.contains("<!channel>"), "broadcast survived: {text}");
    assert!(
        text.contains("*payments*"),
        "Markdown not converted: {text}"
    );
    bot.stop().await;
}

async fn rate_limited_post_is_retried(database: TestDatabase) {
    let bot = offline_bot(&database).await;
    bot.slack.fail_next(
        "chat.postMessage",
        agentdesk_standins::slack::Fault::RateLimited {
            retry_after_secs: 1,
        },
    );
    bot.send(slack_fixture("message_im_envelope.json")).await;
    let posts = bot
        .slack
        .wait_for_posts(1, WAIT)
        .await
        .expect("the answer still arrives");
    assert_eq!(posts[0].channel, "D0DMALICE1");
    let attempts = bot
        .slack
        .calls()
        .iter()
        .filter(|call| call.method == "chat.postMessage")
        .count();
    assert_eq!(attempts, 2);
    bot.stop().await;
}

async fn shutdown_interrupts_an_answer_past_the_grace_period(database: TestDatabase) {
    let (bot, model) = model_bot(
        &database,
        &[
            ("AGENTDESK_SHUTDOWN_GRACE_SECS", "1"),
            ("AGENTDESK_LLM_TIMEOUT_SECS", "30"),
        ],
    )
    .await;
    model.push(Reply::Delayed(
        Duration::from_secs(8),
        Box::new(Reply::Text("too late".into())),
    ));
    bot.send(slack_fixture("message_im_envelope.json")).await;
    model
        .wait_for_requests(1, WAIT)
        .await
        .expect("the answer started");

    let RunningBot {
        slack: bot_slack,
        stop,
        task,
        ..
    } = bot;
    let _ = stop.expect("stop sender").send(());
    task.expect("serve task")
        .await
        .expect("no panic")
        .expect("serve stops cleanly");

    let posts = bot_slack.posts();
    assert_eq!(posts.len(), 1, "only the interruption notice: {posts:#?}");
    let notice = posts[0].text.clone().unwrap_or_default();
    assert!(notice.contains("restarted"), "unexpected notice: {notice}");
    assert_eq!(posts[0].thread_ts.as_deref(), Some("1717172000.123456"));

    let store = database.store().await;
    let recorded = invocations::recent(&store, 5).await.expect("invocations");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status, Status::Interrupted);
    assert!(
        notice.contains(&recorded[0].id),
        "the notice names the invocation"
    );
}
