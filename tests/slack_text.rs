//! Slack text handling: decoding incoming text, converting Markdown to
//! mrkdwn, and splitting long replies under Slack's limits.

use agentdesk::slack::mrkdwn::{escape_mrkdwn, markdown_to_mrkdwn};
use agentdesk::slack::split::{
    MAX_BLOCKS_PER_MESSAGE, MAX_MESSAGE_TEXT_CHARS, MAX_SECTION_TEXT_CHARS, split_message,
};
use agentdesk::slack::text::decode_incoming;
use proptest::prelude::*;
use regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

const BOT: &str = "U0BOT00001";

/// The text of the `app_mention` in the recorded channel-message payload.
const PAYLOAD_TEXT: &str = "<@U0BOT00001> can you check <#C0OTHER001|deploys> &amp; tell me if \
     <https://status.example.com/incidents/42|incident 42> is resolved? x &lt; 5";

// ---------------------------------------------------------------------------
// decode_incoming

#[test]
fn decode_payload_text() {
    assert_eq!(
        decode_incoming(PAYLOAD_TEXT, Some(BOT)),
        "can you check #deploys & tell me if incident 42 \
         (https://status.example.com/incidents/42) is resolved? x < 5"
    );
}

#[test]
fn decode_removes_bot_mentions() {
    let cases = [
        ("<@U0BOT00001> what is our SLA?", "what is our SLA?"),
        ("<@U0BOT00001|askbot> what is our SLA?", "what is our SLA?"),
        ("hey <@U0BOT00001> what is our SLA?", "hey what is our SLA?"),
        ("what is our SLA? <@U0BOT00001>", "what is our SLA?"),
        ("<@U0BOT00001>, what is our SLA?", "what is our SLA?"),
        ("<@U0BOT00001>: what is our SLA?", "what is our SLA?"),
        ("<@U0BOT00001> :) thanks", ":) thanks"),
        ("thanks <@U0BOT00001>!", "thanks!"),
        ("<@U0BOT00001> <@U0BOT00001>  ping", "ping"),
        ("<@U0BOT00001>", ""),
        ("  <@U0BOT00001>\n\tline two ", "line two"),
        ("line one\n<@U0BOT00001> line two", "line one\nline two"),
        ("ask <@U0BOT00001> and <@U0ALICE001>", "ask and @U0ALICE001"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode_incoming(input, Some(BOT)),
            expected,
            "input: {input:?}"
        );
    }
}

#[test]
fn decode_keeps_bot_mention_without_bot_id() {
    assert_eq!(decode_incoming("<@U0BOT00001> hi", None), "@U0BOT00001 hi");
}

#[test]
fn decode_tokens() {
    let cases = [
        ("<@U123|alice>", "@alice"),
        ("<@U123>", "@U123"),
        ("<@U123|>", "@U123"),
        ("<#C123|deploys>", "#deploys"),
        ("<#C123>", "#C123"),
        ("<https://x.example|label>", "label (https://x.example)"),
        ("<https://x.example>", "https://x.example"),
        ("<https://x.example|https://x.example>", "https://x.example"),
        ("<mailto:a@b.c|a@b.c>", "a@b.c"),
        ("<mailto:a@b.c|Alice>", "Alice (a@b.c)"),
        ("<mailto:a@b.c>", "a@b.c"),
        ("<!here>", "@here"),
        ("<!here|here>", "@here"),
        ("<!channel>", "@channel"),
        ("<!everyone>", "@everyone"),
        ("<!subteam^S0GROUP01|@oncall>", "@oncall"),
        ("<!subteam^S0GROUP01>", "@S0GROUP01"),
        (
            "<!date^1717171717^{date_short}|Jun 1st, 2024>",
            "Jun 1st, 2024",
        ),
        ("<!foo|bar>", "bar"),
        ("<!foo>", "foo"),
        (
            "<https://x.example/?a=1&amp;b=2|A &amp; B>",
            "A & B (https://x.example/?a=1&b=2)",
        ),
        ("<@U123|R&amp;D lead>", "@R&D lead"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode_incoming(input, Some(BOT)),
            expected,
            "input: {input:?}"
        );
    }
}

#[test]
fn decode_unescapes_once() {
    let cases = [
        ("a &amp; b", "a & b"),
        ("x &lt; 5 &gt; 3", "x < 5 > 3"),
        ("&amp;lt;", "&lt;"),
        ("&amp;amp;", "&amp;"),
        ("&quot;kept&quot; &copy;", "&quot;kept&quot; &copy;"),
        ("a & b", "a & b"),
        ("&lt;@U123&gt;", "<@U123>"),
        ("&lt;!here&gt;", "<!here>"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode_incoming(input, Some(BOT)),
            expected,
            "input: {input:?}"
        );
    }
}

#[test]
fn decode_keeps_unclosed_angle_bracket() {
    let cases = [
        ("a < b", "a < b"),
        ("<", "<"),
        ("<@U123", "<@U123"),
        ("x < <@U123|bob>", "x < @bob"),
        ("<a\nb>", "<a\nb>"),
        ("trailing <", "trailing <"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode_incoming(input, Some(BOT)),
            expected,
            "input: {input:?}"
        );
    }
}

#[test]
fn decode_keeps_lines_and_unicode() {
    assert_eq!(
        decode_incoming("<@U0BOT00001> héllo 👩‍👩‍👧\nsecond line", Some(BOT)),
        "héllo 👩‍👩‍👧\nsecond line"
    );
}

// ---------------------------------------------------------------------------
// markdown_to_mrkdwn

#[test]
fn mrkdwn_inline_formatting() {
    let cases = [
        ("**bold**", "*bold*"),
        ("__bold__", "*bold*"),
        ("*italic*", "_italic_"),
        ("_italic_", "_italic_"),
        ("~~gone~~", "~gone~"),
        ("**bold _and italic_**", "*bold _and italic_*"),
        ("plain text", "plain text"),
        ("", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_headings() {
    let cases = [
        ("# Title", "*Title*"),
        ("### Deep **title**", "*Deep title*"),
        ("Title\n=====", "*Title*"),
        ("# Title\ntext", "*Title*\n\ntext"),
        ("# Title\n\ntext", "*Title*\n\ntext"),
        ("intro\n\n## Next\n\nbody", "intro\n\n*Next*\n\nbody"),
        ("# _Why_ `it` works", "*_Why_ `it` works*"),
        ("#", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_links_and_images() {
    let cases = [
        (
            "[the runbook](https://wiki.example.com/db)",
            "<https://wiki.example.com/db|the runbook>",
        ),
        (
            "[https://x.example](https://x.example)",
            "<https://x.example>",
        ),
        ("<https://x.example/a>", "<https://x.example/a>"),
        (
            "<ops@example.com>",
            "<mailto:ops@example.com|ops@example.com>",
        ),
        (
            "![a diagram](https://x.example/d.png)",
            "<https://x.example/d.png|a diagram>",
        ),
        ("![](https://x.example/d.png)", "<https://x.example/d.png>"),
        (
            "[**bold** label](https://x.example)",
            "<https://x.example|*bold* label>",
        ),
        (
            "[a & b](https://x.example/?q=1&r=2)",
            "<https://x.example/?q=1&amp;r=2|a &amp; b>",
        ),
        (
            "[pipe](https://x.example/a|b)",
            "<https://x.example/a%7Cb|pipe>",
        ),
        (
            "[spaced](<https://x.example/a b>)",
            "<https://x.example/a%20b|spaced>",
        ),
        ("[setup](docs/setup.md)", "setup (docs/setup.md)"),
        ("[empty]()", "empty"),
        (
            "[docs][1]\n\n[1]: https://docs.example.com",
            "<https://docs.example.com|docs>",
        ),
        (
            "[![logo](https://x.example/l.png)](https://x.example)",
            "<https://x.example/l.png|logo> (<https://x.example>)",
        ),
        (
            "[talk to <@U123>](https://x.example)",
            "talk to <@U123> (<https://x.example>)",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_lists() {
    let cases = [
        ("- a\n- b", "• a\n• b"),
        ("* a\n* b", "• a\n• b"),
        ("1. one\n2. two", "1. one\n2. two"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("- a\n  - b\n    - c\n- d", "• a\n    • b\n        • c\n• d"),
        ("1. one\n   - sub\n2. two", "1. one\n    • sub\n2. two"),
        ("- a\n\n- b", "• a\n• b"),
        ("- para one\n\n  para two", "• para one\n    para two"),
        ("intro\n\n- a\n- b\n\noutro", "intro\n\n• a\n• b\n\noutro"),
        ("- **bold** item", "• *bold* item"),
        ("- line one\n  line two", "• line one\n    line two"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_blockquotes() {
    let cases = [
        ("> quoted", "> quoted"),
        ("> one\n> two", "> one\n> two"),
        ("> para one\n>\n> para two", "> para one\n>\n> para two"),
        ("> - a\n> - b", "> • a\n> • b"),
        ("text\n\n> quoted\n\nmore", "text\n\n> quoted\n\nmore"),
        ("- a\n\n> quoted", "• a\n\n> quoted"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_code() {
    let cases = [
        ("use `a < b && c`", "use `a &lt; b &amp;&amp; c`"),
        ("`**not bold**`", "`**not bold**`"),
        (
            "```rust\nif a < b && c > d {}\n```",
            "```\nif a &lt; b &amp;&amp; c &gt; d {}\n```",
        ),
        (
            "```\nline one\n\nline three\n```",
            "```\nline one\n\nline three\n```",
        ),
        (
            "    indented code\n    more",
            "```\nindented code\nmore\n```",
        ),
        (
            "text\n\n```\ncode\n```\n\nafter",
            "text\n\n```\ncode\n```\n\nafter",
        ),
        ("```\n```", "```\n```"),
        ("~~~\n<b>tag</b>\n~~~", "```\n&lt;b&gt;tag&lt;/b&gt;\n```"),
        (
            "- item\n\n  ```\n  code\n  ```",
            "• item\n    ```\n    code\n    ```",
        ),
        ("> ```\n> code\n> ```", "> ```\n> code\n> ```"),
        ("`<@U123>`", "`<@U123>`"),
        ("`<!here>`", "`&lt;!here&gt;`"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_code_keeps_its_fences_intact() {
    let output = markdown_to_mrkdwn("~~~\nuse ``` for fences\n~~~");

    assert_eq!(output.matches("```").count(), 2, "output: {output:?}");
    assert!(output.contains("for fences"), "output: {output:?}");
}

#[test]
fn mrkdwn_tables() {
    let cases = [
        ("| a | b |\n|---|---|\n| 1 | 2 |", "```\na | b\n1 | 2\n```"),
        (
            "| name | owner |\n|------|-------|\n| api | **team-a** |\n| billing-db | `team-b` |",
            "```\nname       | owner\napi        | team-a\nbilling-db | team-b\n```",
        ),
        (
            "| a | b |\n|---|---|\n| 1 | 2 | 3 |",
            "```\na | b\n1 | 2 | 3\n```",
        ),
        ("| a | b |\n|---|---|\n| x |", "```\na | b\nx\n```"),
        (
            "| x & y |\n|---|\n| <b> |",
            "```\nx &amp; y\n&lt;b&gt;\n```",
        ),
        (
            "| doc |\n|---|\n| [runbook](https://x.example) |",
            "```\ndoc\nrunbook (https://x.example)\n```",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_breaks_rules_and_html() {
    let cases = [
        ("one\ntwo", "one\ntwo"),
        ("one  \ntwo", "one\ntwo"),
        ("one\\\ntwo", "one\ntwo"),
        ("above\n\n---\n\nbelow", "above\n\n───\n\nbelow"),
        ("a <b>bold</b> word", "a &lt;b&gt;bold&lt;/b&gt; word"),
        ("<div>\nblock\n</div>", "&lt;div&gt;\nblock\n&lt;/div&gt;"),
        ("<!-- note -->", "&lt;!-- note --&gt;"),
        ("AT&T &amp; 1 < 2 > 0", "AT&amp;T &amp; 1 &lt; 2 &gt; 0"),
        ("&copy; &#35;", "© #"),
        ("\\*not italic\\*", "*not italic*"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_leaves_emoji_and_identifiers_alone() {
    let cases = [
        (":white_check_mark: done", ":white_check_mark: done"),
        ("call snake_case_name now", "call snake_case_name now"),
        ("2 * 3 * 4", "2 * 3 * 4"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_passes_slack_tokens_through() {
    let tokens = [
        "<@U0ALICE001>",
        "<@U0ALICE001|alice>",
        "<#C0CHAN0001>",
        "<#C0CHAN0001|general>",
        "<https://status.example.com/incidents/42|incident 42>",
        "<https://x.example/a_b_c>",
        "<http://x.example/*star*>",
        "<mailto:ops@example.com|ops team>",
        "<mailto:ops@example.com>",
        "<!date^1717171717^{date_short}|Jun 1>",
    ];
    for token in tokens {
        let markdown = format!("see **{token}** now");

        assert_eq!(
            markdown_to_mrkdwn(&markdown),
            format!("see *{token}* now"),
            "token: {token:?}"
        );
        assert_eq!(markdown_to_mrkdwn(token), token, "token: {token:?}");
    }
}

#[test]
fn mrkdwn_neutralises_broadcasts() {
    let cases = [
        ("<!here>", "&lt;!here&gt;"),
        ("<!channel> now", "&lt;!channel&gt; now"),
        ("<!everyone>", "&lt;!everyone&gt;"),
        ("<!here|here>", "&lt;!here|here&gt;"),
        (
            "<!subteam^S0GROUP01|@oncall>",
            "&lt;!subteam^S0GROUP01|@oncall&gt;",
        ),
        ("<!subteam^S0GROUP01>", "&lt;!subteam^S0GROUP01&gt;"),
        ("ping @here", "ping @\u{200B}here"),
        ("**@channel**", "*@\u{200B}channel*"),
        ("@Everyone, hi", "@\u{200B}Everyone, hi"),
        ("`@here`", "`@\u{200B}here`"),
        ("<!subteam^S1|@here>", "&lt;!subteam^S1|@\u{200B}here&gt;"),
        ("mail ops@channel.io", "mail ops@channel.io"),
        ("@heretic and @channels", "@heretic and @channels"),
    ];
    for (input, expected) in cases {
        assert_eq!(markdown_to_mrkdwn(input), expected, "input: {input:?}");
    }
}

#[test]
fn mrkdwn_keeps_broadcast_words_in_email_links_inert() {
    let output = markdown_to_mrkdwn("<ops@channel> and <a@here.io>");

    assert_eq!(
        output,
        "<mailto:ops@channel|ops@channel> and <mailto:a@here.io|a@here.io>"
    );
}

#[test]
fn mrkdwn_handles_placeholder_characters_in_input() {
    let markdown = "\u{F0000} <@U1> \u{F0001} <#C2|x> \u{10FFFD}";

    assert_eq!(markdown_to_mrkdwn(markdown), markdown);
}

#[test]
fn mrkdwn_full_answer() {
    let markdown = "## Rotating the staging DB password\n\n\
        Run this as **ops**:\n\n\
        ```bash\nvault write -f database/rotate-role/staging && echo ok\n```\n\n\
        1. Check the [runbook](https://wiki.example.com/db-rotation).\n\
        2. Tell <@U0ALICE001> when done.\n\n\
        > Rotation takes < 5 min.";
    let expected = "*Rotating the staging DB password*\n\n\
        Run this as *ops*:\n\n\
        ```\nvault write -f database/rotate-role/staging &amp;&amp; echo ok\n```\n\n\
        1. Check the <https://wiki.example.com/db-rotation|runbook>.\n\
        2. Tell <@U0ALICE001> when done.\n\n\
        > Rotation takes &lt; 5 min.";

    assert_eq!(markdown_to_mrkdwn(markdown), expected);
}

#[test]
fn escape_mrkdwn_plain_text() {
    let cases = [
        ("a & b", "a &amp; b"),
        ("<b>", "&lt;b&gt;"),
        ("&lt;", "&amp;lt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<!subteam^S1|@oncall>", "&lt;!subteam^S1|@oncall&gt;"),
        ("hey @channel", "hey @\u{200B}channel"),
        ("*stays* _as_ `is`", "*stays* _as_ `is`"),
        ("", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(escape_mrkdwn(input), expected, "input: {input:?}");
    }
}

// ---------------------------------------------------------------------------
// split_message

#[test]
fn split_limits_match_slack() {
    assert_eq!(MAX_MESSAGE_TEXT_CHARS, 3_900);
    assert_eq!(MAX_SECTION_TEXT_CHARS, 3_000);
    assert_eq!(MAX_BLOCKS_PER_MESSAGE, 50);
}

#[test]
fn split_short_text_is_one_chunk() {
    assert_eq!(split_message("hello", 100), ["hello"]);
    assert_eq!(split_message("  hello  \n", 100), ["hello"]);
    assert_eq!(split_message("a\n\nb", 100), ["a\n\nb"]);
}

#[test]
fn split_empty_text_has_no_chunks() {
    assert!(split_message("", 100).is_empty());
    assert!(split_message(" \n\n\t ", 100).is_empty());
}

#[test]
fn split_prefers_paragraph_break() {
    let text = "first paragraph\nstill first\n\nsecond paragraph here";

    assert_eq!(
        split_message(text, 40),
        ["first paragraph\nstill first", "second paragraph here"]
    );
}

#[test]
fn split_prefers_line_break_over_space() {
    let text = "line one here\nline two is here and long";

    assert_eq!(
        split_message(text, 30),
        ["line one here", "line two is here and long"]
    );
}

#[test]
fn split_at_space_when_no_line_break_fits() {
    let text = "alpha beta gamma delta epsilon zeta";

    assert_eq!(
        split_message(text, 20),
        ["alpha beta gamma", "delta epsilon zeta"]
    );
}

#[test]
fn split_counts_characters_not_bytes() {
    let text = "é".repeat(20) + " " + &"ü".repeat(20);

    assert_eq!(split_message(&text, 20), ["é".repeat(20), "ü".repeat(20)]);
}

#[test]
fn split_treats_small_limits_as_sixteen() {
    let text = "abcdefghijklmnopqrstuvwxyz";
    let chunks = split_message(text, 1);

    assert_eq!(chunks, ["abcdefghijklmnop", "qrstuvwxyz"]);
}

#[test]
fn split_keeps_grapheme_clusters_whole() {
    let family = "👩\u{200D}👩\u{200D}👧";
    let accented = "e\u{301}";
    let text = format!("{family}{accented}").repeat(10);

    let chunks = split_message(&text, 16);

    assert!(chunks.len() > 1);
    for chunk in &chunks {
        assert!(chunk.chars().count() <= 16, "chunk: {chunk:?}");
        let whole = chunk.graphemes(true).all(|g| g == family || g == accented);
        assert!(whole, "chunk: {chunk:?}");
    }
    assert_eq!(chunks.concat(), text);
}

#[test]
fn split_keeps_tokens_whole() {
    let token = "<https://status.example.com/x|incident 42>";
    let text = format!("see {token} now please");

    let chunks = split_message(&text, 48);

    assert_eq!(chunks, [format!("see {token}"), "now please".to_string()]);
}

#[test]
fn split_moves_token_that_does_not_fit() {
    let token = "<https://x.example/a|the label>";
    let text = format!("abcdefghij{token}");

    let chunks = split_message(&text, 35);

    assert_eq!(chunks, ["abcdefghij", token]);
}

#[test]
fn split_keeps_escapes_whole() {
    let text = "abcdefghijklmno&amp;&lt;&gt;";

    let chunks = split_message(text, 17);

    assert_eq!(chunks, ["abcdefghijklmno", "&amp;&lt;&gt;"]);
}

#[test]
fn split_cuts_token_longer_than_limit() {
    let token = format!("<https://x.example/{}>", "a".repeat(40));

    let chunks = split_message(&token, 20);

    assert!(chunks.len() > 1);
    for chunk in &chunks {
        assert!(chunk.chars().count() <= 20, "chunk: {chunk:?}");
    }
    assert_eq!(chunks.concat(), token);
}

#[test]
fn split_cuts_grapheme_that_overlaps_escape() {
    // The accents combine with the `;` of `&amp;`, so the escape and the
    // grapheme overlap and together exceed what fits inside a code block.
    let text = "```\n&amp;\u{301}\u{302}\u{301}\u{302}";

    let chunks = split_message(text, 16);

    for chunk in &chunks {
        assert!(chunk.chars().count() <= 16, "chunk: {chunk:?}");
        assert_eq!(chunk.matches("```").count() % 2, 0, "chunk: {chunk:?}");
    }
    assert!(chunks.iter().any(|chunk| chunk.contains("&amp;")));
}

#[test]
fn split_closes_and_reopens_code_blocks() {
    let text = "intro\n\n```\nline 1\nline 2\nline 3\nline 4\n```\n\noutro";

    let chunks = split_message(text, 24);

    assert_eq!(
        chunks,
        [
            "intro",
            "```\nline 1\nline 2\n```",
            "```\nline 3\nline 4\n```",
            "outro"
        ]
    );
}

#[test]
fn split_closes_unterminated_code_block() {
    assert_eq!(split_message("```\ncode", 100), ["```\ncode\n```"]);
}

#[test]
fn split_keeps_code_indentation() {
    let text = "```\nfn main() {\n    body();\n}\n```";

    let chunks = split_message(text, 24);

    assert_eq!(
        chunks,
        ["```\nfn main() {\n```", "```\n    body();\n}\n```"]
    );
}

#[test]
fn split_long_reply_under_message_limit() {
    let paragraph = "The api service is owned by team-a and runs in prod. ".repeat(20);
    let text = [paragraph.trim(); 10].join("\n\n");

    let chunks = split_message(&text, MAX_MESSAGE_TEXT_CHARS);

    assert_eq!(chunks.len(), 4);
    for chunk in &chunks {
        assert!(chunk.chars().count() <= MAX_MESSAGE_TEXT_CHARS);
        assert!(!chunk.starts_with('\n'), "chunk: {chunk:?}");
        assert!(!chunk.ends_with('\n'), "chunk: {chunk:?}");
    }
    assert_eq!(chunks.join("\n\n"), text);
}

// ---------------------------------------------------------------------------
// Properties

/// Text made of arbitrary printable Unicode mixed with the characters and
/// sequences that matter to Markdown, mrkdwn and splitting.
fn mixed_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "\\PC{0,12}",
        1 => Just("`".to_string()),
        1 => Just("```".to_string()),
        1 => Just("\n```\n".to_string()),
        1 => Just("~~~".to_string()),
        1 => Just("<".to_string()),
        1 => Just(">".to_string()),
        1 => Just("&".to_string()),
        1 => Just("&amp;".to_string()),
        1 => Just("&lt;".to_string()),
        1 => Just("|".to_string()),
        1 => Just("\n".to_string()),
        1 => Just("\n\n".to_string()),
        1 => Just(" ".to_string()),
        1 => Just("    ".to_string()),
        1 => Just("*".to_string()),
        1 => Just("_".to_string()),
        1 => Just("# ".to_string()),
        1 => Just("- ".to_string()),
        1 => Just("1. ".to_string()),
        1 => Just("> ".to_string()),
        1 => Just("[".to_string()),
        1 => Just("](".to_string()),
        1 => Just(")".to_string()),
        1 => Just("\n|---|---|\n".to_string()),
        1 => Just("👩\u{200D}👩\u{200D}👧".to_string()),
        1 => Just("e\u{301}".to_string()),
        1 => Just("\u{301}\u{302}".to_string()),
        1 => Just("<@U123|bob>".to_string()),
        1 => Just("<https://example.com/a|a link>".to_string()),
        1 => Just("<!here>".to_string()),
        1 => Just("@channel".to_string()),
        1 => Just("\u{F0000}".to_string()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// Markdown syntax placed before a word. None of it can hide a word: no
/// link titles or reference definitions (`"`, `(`, `:` are left out).
const WORD_PREFIXES: &[&str] = &[
    "",
    " ",
    "\n",
    "\n\n",
    "**",
    "*",
    "_",
    "__",
    "~~",
    "`",
    "\n```\n",
    "\n# ",
    "\n## ",
    "\n- ",
    "\n  - ",
    "\n1. ",
    "\n> ",
    "\n    ",
    "<",
    "</",
    "&",
    "|",
    "\n|---|---|\n",
    "\\",
    "  \n",
    "\n---\n",
    "\t",
    "@",
    "#",
    "\n===\n",
    "~~~",
    "<!here> ",
    "<@U123> ",
];

/// Markdown syntax placed after a word.
const WORD_SUFFIXES: &[&str] = &["", " ", "**", "*", "_", "~~", "`", ">", " |", "\n", "\\"];

/// One word of a generated Markdown text, wrapped in syntax.
#[derive(Debug, Clone)]
enum Wrapped {
    Plain(usize, usize),
    Link,
    Image,
    Autolink,
}

/// Markdown built from words and syntax, with the words it contains. Each
/// word carries a unique `q<n>z` tag, so one word never appears inside
/// another.
fn words_and_markdown() -> impl Strategy<Value = (String, Vec<String>)> {
    let wrapped = prop_oneof![
        8 => (0..WORD_PREFIXES.len(), 0..WORD_SUFFIXES.len())
            .prop_map(|(prefix, suffix)| Wrapped::Plain(prefix, suffix)),
        1 => Just(Wrapped::Link),
        1 => Just(Wrapped::Image),
        1 => Just(Wrapped::Autolink),
    ];
    let element = ("[a-zA-Zé]{1,6}", wrapped);

    prop::collection::vec(element, 1..30).prop_map(|elements| {
        let mut markdown = String::new();
        let mut words = Vec::new();
        for (index, (letters, wrapped)) in elements.into_iter().enumerate() {
            let word = format!("{letters}q{index}z");
            let piece = match wrapped {
                Wrapped::Plain(prefix, suffix) => {
                    format!("{}{word}{}", WORD_PREFIXES[prefix], WORD_SUFFIXES[suffix])
                }
                Wrapped::Link => format!(" [{word}](https://example.com/page) "),
                Wrapped::Image => format!(" ![{word}](https://example.com/i.png) "),
                Wrapped::Autolink => format!(" <https://example.com/{word}> "),
            };
            markdown.push_str(&piece);
            words.push(word);
        }
        (markdown, words)
    })
}

/// Tells whether `word` sits in the info string of a fence opener, the
/// one place where Markdown text is not shown.
fn is_in_fence_info(markdown: &str, word: &str) -> bool {
    markdown.lines().any(|line| {
        let Some(position) = line.find(word) else {
            return false;
        };
        let before = &line[..position];
        before.contains("```") || before.contains("~~~")
    })
}

/// Finds what would notify a whole channel in mrkdwn: a broadcast token,
/// or a bare broadcast word outside `<...>` tokens (Slack does not read
/// mentions inside a link's URL or label).
fn find_broadcast(mrkdwn: &str) -> Option<String> {
    let token = Regex::new(r"<!(here|channel|everyone|subteam)").unwrap();
    let any_token = Regex::new(r"<[^<>]*>").unwrap();
    let bare = Regex::new(r"(?i)(^|[^\w])@(here|channel|everyone)\b").unwrap();

    if let Some(found) = token.find(mrkdwn) {
        return Some(found.as_str().to_string());
    }
    let outside_tokens = any_token.replace_all(mrkdwn, " ");
    bare.find(&outside_tokens)
        .map(|found| found.as_str().to_string())
}

/// Checks the chunks of `text` against every promise of `split_message` and
/// returns the first broken one.
fn check_chunks(text: &str, chunks: &[String], max_chars: usize) -> Result<(), String> {
    let limit = max_chars.max(16);
    let grapheme_starts: Vec<(usize, &str)> = text.grapheme_indices(true).collect();
    let is_boundary = |offset: usize| {
        offset == text.len() || grapheme_starts.iter().any(|(start, _)| *start == offset)
    };
    let escapes: Vec<(usize, usize)> = ["&amp;", "&lt;", "&gt;"]
        .iter()
        .flat_map(|escape| text.match_indices(escape))
        .map(|(start, escape)| (start, start + escape.len()))
        .collect();
    let is_inside_escape = |offset: usize| {
        escapes
            .iter()
            .any(|&(start, end)| start < offset && offset < end)
    };
    // A grapheme may be cut when it cannot fit in a chunk on its own, or
    // when it overlaps an escape, so that keeping both whole is impossible.
    let may_cut_grapheme_at = |offset: usize| {
        let Some(&(start, grapheme)) = grapheme_starts
            .iter()
            .rev()
            .find(|(start, _)| *start < offset)
        else {
            return false;
        };
        let end = start + grapheme.len();
        let overlaps_escape = escapes
            .iter()
            .any(|&(escape_start, escape_end)| escape_start < end && start < escape_end);
        grapheme.chars().count() > limit - 8 || overlaps_escape
    };

    let mut position = 0;
    let mut is_in_code = false;
    for chunk in chunks {
        if chunk.chars().count() > limit {
            return Err(format!("chunk over {limit} chars: {chunk:?}"));
        }
        if chunk.trim().is_empty() {
            return Err(format!("empty chunk: {chunk:?}"));
        }
        if chunk.matches("```").count() % 2 != 0 {
            return Err(format!("unbalanced fences: {chunk:?}"));
        }

        let rest = if is_in_code {
            chunk
                .strip_prefix("```\n")
                .ok_or(format!("code not reopened: {chunk:?}"))?
        } else {
            chunk.as_str()
        };

        // The chunk text is `rest`, or `rest` without a closing fence that
        // the split added because the text goes on inside the code block.
        // The reading that matches the text at this position wins.
        let ends_in_code = |core: &str| is_in_code ^ (core.matches("```").count() % 2 == 1);
        let mut readings = Vec::new();
        if !ends_in_code(rest) {
            readings.push(rest);
        }
        if let Some(core) = rest.strip_suffix("\n```").filter(|core| ends_in_code(core)) {
            readings.push(core);
        }
        let locate = |core: &str| {
            let found = text[position..].find(core)?;
            let gap = &text[position..position + found];
            gap.trim().is_empty().then_some(position + found)
        };
        let (core, start) = readings
            .into_iter()
            .find_map(|core| locate(core).map(|start| (core, start)))
            .ok_or(format!("chunk not in text after {position}: {chunk:?}"))?;
        is_in_code = ends_in_code(core);
        let end = start + core.len();
        for offset in [start, end] {
            if !is_boundary(offset) && !may_cut_grapheme_at(offset) {
                return Err(format!("grapheme split at {offset} by {core:?}"));
            }
            if is_inside_escape(offset) {
                return Err(format!("escape split at {offset} by {core:?}"));
            }
        }
        position = end;
    }
    if !text[position..].trim().is_empty() {
        return Err(format!("text lost at the end: {:?}", &text[position..]));
    }
    Ok(())
}

proptest! {
    #[test]
    fn markdown_conversion_never_panics(text in mixed_text()) {
        markdown_to_mrkdwn(&text);
        escape_mrkdwn(&text);
    }

    #[test]
    fn markdown_conversion_never_notifies(text in mixed_text()) {
        let output = markdown_to_mrkdwn(&text);

        let broadcast = find_broadcast(&output);
        prop_assert!(broadcast.is_none(), "found {:?} in {:?}", broadcast, output);
    }

    #[test]
    fn markdown_conversion_keeps_every_word((markdown, words) in words_and_markdown()) {
        let output = markdown_to_mrkdwn(&markdown);

        for word in words.iter().filter(|word| !is_in_fence_info(&markdown, word)) {
            prop_assert!(output.contains(word.as_str()), "lost {:?}; output: {:?}", word, output);
        }
    }

    #[test]
    fn decode_incoming_never_panics(text in mixed_text()) {
        decode_incoming(&text, Some("U123"));
        decode_incoming(&text, None);
    }

    #[test]
    fn split_keeps_its_promises(text in mixed_text(), max_chars in 0usize..64) {
        let chunks = split_message(&text, max_chars);

        if let Err(broken) = check_chunks(&text, &chunks, max_chars) {
            prop_assert!(false, "{}; chunks: {:?}", broken, chunks);
        }
    }

    #[test]
    fn split_of_converted_markdown_keeps_its_promises(
        text in mixed_text(),
        max_chars in 16usize..120,
    ) {
        let mrkdwn = markdown_to_mrkdwn(&text);
        let chunks = split_message(&mrkdwn, max_chars);

        if let Err(broken) = check_chunks(&mrkdwn, &chunks, max_chars) {
            prop_assert!(false, "{}; chunks: {:?}", broken, chunks);
        }
    }
}
