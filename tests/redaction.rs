//! Redaction of secrets and e-mail addresses: one fake secret of every
//! supported format, near misses that must stay, the settings, and
//! properties over arbitrary Unicode text.
//!
//! Every fake secret is put together from pieces at run time, so that no
//! complete token sits in the repository for secret scanners to flag.

use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

use agentdesk::governance::redaction::{RedactionSettings, Redactor};
use proptest::prelude::*;
use regex::Regex;

const MIXED: &str = "Q7mZp2Xk9LrT4vWc8NbY3hJs6DfG5aE1uRo0";
const UPPER: &str = "Q7MZP2XK9LRT4VWC8NBY3HJS6DFG5AE1URO0";
const HEX: &str = "9f3a6c1e8b4d7025";
/// The alphabet of base64url bodies (OpenAI project and Anthropic keys).
const URL_SAFE: &str = "Q7mZp2Xk9L-rT4vWc8N_bY3hJs6DfG5aE1";
/// The alphabet of AWS secret access keys and other standard base64.
const BASE64: &str = "wJalrXUtnF/K7MDENG+bPxRfiCYz4Q9h";

/// A fake secret, the label in front of it that redaction keeps, and the
/// kind its marker must name.
struct FakeSecret {
    name: &'static str,
    label: &'static str,
    secret: String,
    kind: &'static str,
}

fn repeat_chars(alphabet: &str, len: usize) -> String {
    alphabet.chars().cycle().take(len).collect()
}

fn mixed(len: usize) -> String {
    repeat_chars(MIXED, len)
}

fn fake(name: &'static str, kind: &'static str, pieces: &[&str]) -> FakeSecret {
    labelled(name, kind, "", pieces)
}

fn labelled(
    name: &'static str,
    kind: &'static str,
    label: &'static str,
    pieces: &[&str],
) -> FakeSecret {
    FakeSecret {
        name,
        label,
        secret: pieces.concat(),
        kind,
    }
}

fn pem_block(label: &str, lines: usize) -> String {
    let mut block = format!("-----BEGIN {label} KEY-----\n");
    for _ in 0..lines {
        block.push_str(&repeat_chars(BASE64, 64));
        block.push('\n');
    }
    block.push_str(&format!("-----END {label} KEY-----"));
    block
}

fn fake_secrets() -> Vec<FakeSecret> {
    let slack = "Slack token";
    let openai = "OpenAI API key";
    let github = "GitHub token";
    let aws_secret = "AWS secret access key";
    let numbers = "1234567890123-2345678901234-";
    let jwt = [
        "ey",
        "JhbGciOiJIUzI1NiJ9.",
        "eyJzdWIiOiIxMjM0In0.",
        &mixed(43),
    ]
    .concat();
    let mut secrets = vec![
        fake("Slack bot", slack, &["xo", "xb-", numbers, &mixed(24)]),
        fake(
            "Slack user",
            slack,
            &["xo", "xp-", numbers, &repeat_chars(HEX, 32)],
        ),
        fake(
            "Slack workspace",
            slack,
            &["xo", "xa-", "2-", numbers, &repeat_chars(HEX, 32)],
        ),
        fake("Slack refresh", slack, &["xo", "xr-", numbers, &mixed(40)]),
        fake(
            "Slack rotating",
            slack,
            &["xo", "xe.", "xo", "xp-", "1-", &mixed(150)],
        ),
        fake(
            "Slack rotation refresh",
            slack,
            &["xo", "xe-", "1-", &mixed(140)],
        ),
        fake(
            "Slack app-level",
            slack,
            &[
                "xa",
                "pp-",
                "1-",
                "A0123ABCDEF-",
                "1234567890123-",
                &repeat_chars(HEX, 64),
            ],
        ),
        fake(
            "Slack webhook",
            "Slack webhook URL",
            &[
                "https://hooks.",
                "slack.com/services/",
                "T0123ABCD/B0123456789/",
                &mixed(24),
            ],
        ),
        fake("OpenAI legacy", openai, &["s", "k-", &mixed(48)]),
        fake(
            "OpenAI project",
            openai,
            &["s", "k-", "proj-", &repeat_chars(URL_SAFE, 156)],
        ),
        fake(
            "OpenAI service account",
            openai,
            &["s", "k-", "svcacct-", &repeat_chars(URL_SAFE, 150)],
        ),
        fake(
            "OpenAI admin",
            openai,
            &["s", "k-", "admin-", &repeat_chars(URL_SAFE, 150)],
        ),
        fake(
            "Anthropic",
            "Anthropic API key",
            &[
                "s",
                "k-",
                "ant-",
                "api03-",
                &repeat_chars(URL_SAFE, 93),
                "AA",
            ],
        ),
        fake(
            "GitHub fine-grained",
            github,
            &["git", "hub_pat_", &mixed(22), "_", &mixed(59)],
        ),
        fake(
            "AWS long-term key ID",
            "AWS access key ID",
            &["AK", "IA", &repeat_chars(UPPER, 16)],
        ),
        fake(
            "AWS temporary key ID",
            "AWS access key ID",
            &["AS", "IA", &repeat_chars(UPPER, 16)],
        ),
        labelled(
            "AWS secret in a credentials file",
            aws_secret,
            "aws_secret_access_key = ",
            &[&repeat_chars(BASE64, 40)],
        ),
        labelled(
            "AWS secret in the environment",
            aws_secret,
            "export AWS_SECRET_ACCESS_KEY=",
            &[&repeat_chars(BASE64, 40)],
        ),
        labelled(
            "AWS secret in JSON",
            aws_secret,
            "\"SecretAccessKey\": \"",
            &[&repeat_chars(BASE64, 40)],
        ),
        labelled(
            "AWS session token",
            "AWS session token",
            "aws_session_token=",
            &[&repeat_chars(BASE64, 300)],
        ),
        labelled(
            "Authorization header",
            "bearer token",
            "Authorization: Bearer ",
            &[&jwt],
        ),
        labelled(
            "Authorization header in JSON",
            "bearer token",
            "\"authorization\": \"Bearer ",
            &[&mixed(32)],
        ),
        labelled("bare bearer", "bearer token", "use bearer ", &[&mixed(30)]),
        fake(
            "RSA private key",
            "private key",
            &[&pem_block("RSA PRIVATE", 4)],
        ),
        fake(
            "PKCS#8 private key",
            "private key",
            &[&pem_block("PRIVATE", 3)],
        ),
        fake(
            "OpenSSH private key",
            "private key",
            &[&pem_block("OPENSSH PRIVATE", 5)],
        ),
        fake(
            "encrypted private key",
            "private key",
            &[&pem_block("ENCRYPTED PRIVATE", 2)],
        ),
    ];
    for (name, prefix) in [
        ("GitHub classic", "p_"),
        ("GitHub OAuth", "o_"),
        ("GitHub user-to-server", "u_"),
        ("GitHub server-to-server", "s_"),
        ("GitHub refresh", "r_"),
    ] {
        secrets.push(fake(name, github, &["gh", prefix, &mixed(36)]));
    }
    secrets
}

fn marker(kind: &str) -> String {
    format!("[redacted: {kind}]")
}

fn default_redactor() -> Redactor {
    Redactor::new(&RedactionSettings::default())
}

fn redactor(secrets: bool, emails: bool) -> Redactor {
    Redactor::new(&RedactionSettings { secrets, emails })
}

/// Returns a redactor compiled once for all property test cases, because
/// compiling the patterns takes longer than a case in a debug build.
fn shared_redactor(emails: bool) -> &'static Redactor {
    static SECRETS_ONLY: OnceLock<Redactor> = OnceLock::new();
    static WITH_EMAILS: OnceLock<Redactor> = OnceLock::new();
    let cell = if emails { &WITH_EMAILS } else { &SECRETS_ONLY };
    cell.get_or_init(|| redactor(true, emails))
}

#[test]
fn every_secret_kind_is_replaced() {
    let redactor = default_redactor();

    for fake in fake_secrets() {
        let text = format!("Why does {}{} fail?", fake.label, fake.secret);
        let expected = format!("Why does {}{} fail?", fake.label, marker(fake.kind));

        assert_eq!(redactor.redact(&text), expected, "{}", fake.name);
    }
}

#[test]
fn secret_alone_is_replaced() {
    let redactor = default_redactor();

    for fake in fake_secrets()
        .into_iter()
        .filter(|fake| fake.label.is_empty())
    {
        assert_eq!(
            redactor.redact(&fake.secret),
            marker(fake.kind),
            "{}",
            fake.name
        );
    }
}

#[test]
fn secret_between_cjk_words_is_found() {
    let redactor = default_redactor();
    let key_id = ["AK", "IA", &repeat_chars(UPPER, 16)].concat();
    let token = ["gh", "p_", &mixed(36)].concat();

    let text = format!("密钥{key_id}请删除，令牌「{token}」です");

    assert_eq!(
        redactor.redact(&text),
        "密钥[redacted: AWS access key ID]请删除，令牌「[redacted: GitHub token]」です"
    );
}

#[test]
fn several_secrets_in_one_text_are_replaced() {
    let redactor = default_redactor();
    let slack = ["xo", "xb-", "1234567890123-2345678901234-", &mixed(24)].concat();
    let github = ["gh", "s_", &mixed(36)].concat();

    let text = format!("bot {slack}\nci {github}, bot again {slack}.");

    assert_eq!(
        redactor.redact(&text),
        "bot [redacted: Slack token]\nci [redacted: GitHub token], bot again [redacted: Slack token]."
    );
}

#[test]
fn anthropic_key_is_not_named_openai() {
    let key = [
        "s",
        "k-",
        "ant-",
        "api03-",
        &repeat_chars(URL_SAFE, 93),
        "AA",
    ]
    .concat();

    let redacted = default_redactor().redact(&key).into_owned();

    assert_eq!(redacted, marker("Anthropic API key"));
}

#[test]
fn known_token_behind_bearer_keeps_its_kind() {
    let redactor = default_redactor();
    let github = ["gh", "p_", &mixed(36)].concat();
    let openai = ["s", "k-", "proj-", &repeat_chars(URL_SAFE, 156)].concat();

    let header = redactor
        .redact(&format!("Authorization: Bearer {github}"))
        .into_owned();
    let bare = redactor
        .redact(&format!("curl with bearer {openai}"))
        .into_owned();

    assert_eq!(header, "Authorization: Bearer [redacted: GitHub token]");
    assert_eq!(bare, "curl with bearer [redacted: OpenAI API key]");
}

#[test]
fn private_key_block_is_replaced_whole() {
    let block = pem_block("EC PRIVATE", 3);
    let text = format!("This key fails:\n\n{block}\n\nWhat is wrong with it?");

    let redacted = default_redactor().redact(&text).into_owned();

    assert_eq!(
        redacted,
        "This key fails:\n\n[redacted: private key]\n\nWhat is wrong with it?"
    );
}

#[test]
fn private_key_without_end_line_is_replaced() {
    let body = repeat_chars(BASE64, 64);
    let begin = ["-----BEGIN ", "RSA PRIVATE", " KEY-----"].concat();
    let cut = format!(
        "{begin}\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{HEX}\n\n{body}\n{body}\n\nwhy is it rejected?"
    );
    let one_line = format!("{begin} {body} {body} is what I pasted");

    let redactor = default_redactor();

    assert_eq!(
        redactor.redact(&cut),
        "[redacted: private key]\n\nwhy is it rejected?"
    );
    assert_eq!(
        redactor.redact(&one_line),
        "[redacted: private key] is what I pasted"
    );
}

#[test]
fn near_misses_are_left_alone() {
    let redactor = default_redactor();
    let near_misses = [
        "We train it with sk-learn and scikit-learn.".to_owned(),
        "task-1234567890 blocks desk-agent and risk-assessment".to_owned(),
        "sk-12345 is too short, and so is sk-proj-alpha".to_owned(),
        format!("risk-{}", mixed(40)),
        "Key IDs start with AKIA, as in AKIA1234.".to_owned(),
        ["AKIA", "IOSFODNN7EXAMPLE", "EXTRA"].concat(),
        ["xAKIA", &repeat_chars(UPPER, 16)].concat(),
        "ghp_short and github_pat_ name GitHub's token types".to_owned(),
        "The bot token looks like xoxb-your-bot-token-here".to_owned(),
        "He is the bearer of bad news; Bearer tokens expire after an hour.".to_owned(),
        "Send Authorization: Bearer <token> or Authorization: Bearer $TOKEN".to_owned(),
        "Authorization: Bearer YOUR_API_KEY".to_owned(),
        "Set aws_secret_access_key = <your secret here>".to_owned(),
        "Post to hooks.slack.com/services/ for webhooks".to_owned(),
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
            .to_owned(),
        "Ask alice@example.com, the owner".to_owned(),
        "Grüße aus 東京 ✓ — naïve café, emoji 🔑🙂".to_owned(),
    ];

    for text in near_misses {
        let redacted = redactor.redact(&text);

        assert!(
            matches!(redacted, Cow::Borrowed(_)),
            "{text:?} became {redacted:?}"
        );
    }
}

#[test]
fn emails_are_kept_when_disabled() {
    let text = "Ask alice.smith+ops@example.co.uk or bob@corp.example.";

    let redacted = redactor(true, false).redact(text);

    assert_eq!(redacted, text);
}

#[test]
fn emails_are_replaced_when_enabled() {
    let text = "Ask alice.smith+ops@example.co.uk or <mailto:bob@corp.example|bob@corp.example>.";

    let redacted = redactor(true, true).redact(text).into_owned();

    assert_eq!(
        redacted,
        "Ask [redacted: e-mail address] or <mailto:[redacted: e-mail address]|[redacted: e-mail address]>."
    );
}

#[test]
fn secrets_off_leaves_tokens_alone() {
    let token = ["gh", "p_", &mixed(36)].concat();
    let text = format!("token {token} from bob@corp.example");

    let nothing = redactor(false, false).redact(&text).into_owned();
    let emails_only = redactor(false, true).redact(&text).into_owned();

    assert_eq!(nothing, text);
    assert_eq!(
        emails_only,
        format!("token {token} from [redacted: e-mail address]")
    );
}

#[test]
fn settings_default_to_secrets_only() {
    let defaults = RedactionSettings::default();
    let from_empty: RedactionSettings = serde_json::from_str("{}").expect("empty settings parse");
    let emails_on: RedactionSettings =
        serde_json::from_str(r#"{"emails": true}"#).expect("partial settings parse");

    assert_eq!(
        defaults,
        RedactionSettings {
            secrets: true,
            emails: false
        }
    );
    assert_eq!(from_empty, defaults);
    assert_eq!(
        emails_on,
        RedactionSettings {
            secrets: true,
            emails: true
        }
    );
}

#[test]
fn settings_reject_unknown_fields() {
    let parsed = serde_json::from_str::<RedactionSettings>(r#"{"email": true}"#);

    let error = parsed
        .expect_err("a misspelt field is rejected")
        .to_string();
    assert!(error.contains("unknown field `email`"), "{error}");
}

#[test]
fn clones_share_the_rules() {
    let original = default_redactor();
    let copy = original.clone();
    let token = ["gh", "o_", &mixed(36)].concat();

    assert_eq!(copy.redact(&token), original.redact(&token));
    assert_eq!(copy.redact(&token), marker("GitHub token"));
}

/// Checks that `output` is `input` with some parts replaced by markers: the
/// text between markers appears in `input` in the same order, never longer.
fn check_redaction_of(input: &str, output: &str) -> Result<(), String> {
    static MARKER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\[redacted: [A-Za-z0-9 .#-]+\]").expect("the marker pattern compiles")
    });
    let mut position = 0;
    for piece in MARKER.split(output) {
        match input[position..].find(piece) {
            Some(offset) => position += offset + piece.len(),
            None => {
                return Err(format!(
                    "{piece:?} is not in the input after byte {position}"
                ));
            }
        }
    }
    Ok(())
}

fn secret_strategy() -> impl Strategy<Value = (String, &'static str)> {
    let secrets: Vec<(String, &'static str)> = fake_secrets()
        .into_iter()
        .filter(|fake| fake.label.is_empty())
        .map(|fake| (fake.secret, fake.kind))
        .collect();
    proptest::sample::select(secrets)
}

proptest! {
    #[test]
    fn redaction_keeps_arbitrary_text(text in "\\PC{0,200}", emails in any::<bool>()) {
        let output = shared_redactor(emails).redact(&text);

        if let Err(problem) = check_redaction_of(&text, &output) {
            prop_assert!(false, "{}; input {:?}, output {:?}", problem, text, output);
        }
        if !output.contains("[redacted: ") {
            prop_assert_eq!(output.as_ref(), text.as_str());
        }
    }

    #[test]
    fn redaction_finds_secret_in_arbitrary_text(
        before in "\\PC{0,40}",
        after in "\\PC{0,40}",
        (secret, kind) in secret_strategy(),
    ) {
        let text = format!("{before} {secret} {after}");

        let output = shared_redactor(false).redact(&text).into_owned();

        prop_assert!(!output.contains(&secret), "secret kept in {:?}", output);
        prop_assert!(output.contains(&marker(kind)), "no {} marker in {:?}", kind, output);
        if let Err(problem) = check_redaction_of(&text, &output) {
            prop_assert!(false, "{}; output {:?}", problem, output);
        }
    }
}
