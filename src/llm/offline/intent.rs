//! Question kinds the offline backend recognises, read with patterns.
//!
//! Patterns only split a question into its kind and its parts (the subject,
//! a property name, the rest). Whether a word names a blueprint, a property
//! value or an entity is decided later against the live catalog, so the
//! patterns stay small and the catalog decides.

use std::sync::LazyLock;

use regex::Regex;

/// What a question asks.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Intent {
    /// Who owns the subject.
    Owner(String),
    /// What the subject (a team or person) owns.
    Owned(String),
    /// Who belongs to the subject (a team).
    Members(String),
    /// What the subject depends on, consumes or uses.
    Dependencies {
        subject: String,
        consumes_only: bool,
    },
    /// What depends on, consumes or uses the subject.
    Dependents(String),
    /// What APIs the subject provides.
    Provides(String),
    /// Which system, domain or group the subject is part of.
    PartOf(String),
    /// One property of the subject, named in everyday words.
    Property { property: String, subject: String },
    /// Everything about the subject.
    Describe(String),
    /// How many of something.
    Count(String),
    /// Which entities match free text ("where do stock levels come from").
    Find(String),
    /// Anything else: listed, filtered or looked up against the catalog.
    Query(String),
}

/// Reads a question into an intent.
pub(super) fn parse(question: &str) -> Intent {
    let text = normalize(question);

    if let Some(rest) = capture(&COUNT, &text) {
        return Intent::Count(rest);
    }
    for (pattern, build) in PATTERNS.iter() {
        if let Some(captures) = pattern.captures(&text) {
            let subject = captures
                .name("s")
                .map(|capture| clean_subject(capture.as_str()))
                .unwrap_or_default();
            let property = captures
                .name("p")
                .map(|capture| capture.as_str().trim().to_string())
                .unwrap_or_default();
            if !subject.is_empty() && !QUESTION_WORDS.contains(&subject.as_str()) {
                return build(subject, property);
            }
        }
    }
    Intent::Query(text)
}

/// Lower-cases a question and strips greetings, politeness and trailing
/// punctuation.
pub(super) fn normalize(question: &str) -> String {
    let mut text = question
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .to_lowercase();
    text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let stripped = LEADING_FILLER.replace(&text, "").into_owned();
        let stripped = TRAILING_FILLER.replace(&stripped, "").into_owned();
        if stripped == text {
            break;
        }
        text = stripped;
    }
    let text = WISE_SUFFIX.replace(text.trim(), "").into_owned();
    let text = HOW_DID_IT_GO
        .replace(text.trim(), "what happened with $1")
        .into_owned();
    let text = text.replace(['(', ')'], " ");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    substitute_topic(&text)
}

/// Turns "wayback search - what apis does it call" (a topic, a dash or
/// colon, then a question about "it") into one question about the topic.
fn substitute_topic(text: &str) -> String {
    let Some((topic, question)) = text.split_once(" - ").or_else(|| text.split_once(": ")) else {
        return text.to_string();
    };
    let topic = topic.trim();
    if topic.is_empty() || topic.split_whitespace().count() > 4 {
        return text.to_string();
    }
    let replaced = PRONOUN.replace_all(question.trim(), |captures: &regex::Captures| {
        if &captures[0] == "its" {
            format!("{topic}'s")
        } else {
            topic.to_string()
        }
    });
    if replaced == question.trim() {
        text.to_string()
    } else {
        replaced.into_owned()
    }
}

/// Removes articles, quotes and filler around an entity name.
pub(super) fn clean_subject(subject: &str) -> String {
    let mut subject = subject
        .trim()
        .trim_matches(|character: char| "`'\"*_?.!,:;()".contains(character))
        .trim()
        .to_string();
    loop {
        let stripped = SUBJECT_FILLER.replace(&subject, "").trim().to_string();
        if stripped == subject {
            break;
        }
        subject = stripped;
    }
    subject
        .trim_matches(|character: char| "`'\"*?.!,:;()".contains(character))
        .to_string()
}

fn capture(pattern: &Regex, text: &str) -> Option<String> {
    pattern
        .captures(text)
        .and_then(|captures| captures.get(1))
        .map(|capture| capture.as_str().trim().to_string())
        .filter(|rest| !rest.is_empty())
}

static LEADING_FILLER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:@(?:here|channel|everyone)[,:]?\s+|(?:hey|hi|hello|yo|ok|okay|so|quick question)[,!:]?\s+|(?:please|pls|plz)\s+|(?:can|could|would) you (?:please |pls )?(?:tell me|let me know|check|look up|find out|find)?\s*|(?:do you know|does anyone know|any idea|i(?:'d| would) like to know|i want to know|i need to know|i wonder|wondering)\s+|(?:tell me|let me know)\s+(?:who|what|which|how|when|if|whether)\b\s*)",
    )
    .expect("the leading filler pattern is valid")
});

static TRAILING_FILLER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[?!.\s]+|\s+(?:please|pls|thanks|thank you|thx|again))$")
        .expect("the trailing filler pattern is valid")
});

static WISE_SUFFIX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+[a-z]+-?wise$").expect("the -wise suffix pattern is valid"));

static HOW_DID_IT_GO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^how (?:did|does|is|was|are|were|has|have) (.+?) (?:go|going|gone|went)$")
        .expect("the how-did-it-go pattern is valid")
});

static PRONOUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:it|its|that one|this one)\b").expect("the pronoun pattern is valid")
});

static SUBJECT_FILLER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:the|our|a|an|this|that|my|your)\s+|\s+(?:right now|currently|these days|today|at the moment|please)$")
        .expect("the subject filler pattern is valid")
});

static COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:how many|what(?:'s| is) the (?:total )?(?:number|count) of|(?:the )?(?:total )?number of|count(?: of| the| all)?)\s+(.+)$")
        .expect("the count pattern is valid")
});

/// Words that are never an entity name on their own.
const QUESTION_WORDS: &[&str] = &[
    "what", "who", "where", "which", "how", "when", "why", "that", "it", "there", "here", "this",
];

type Build = fn(String, String) -> Intent;

static PATTERNS: LazyLock<Vec<(Regex, Build)>> = LazyLock::new(|| {
    RULES
        .iter()
        .map(|(pattern, build)| {
            (
                Regex::new(pattern).expect("each intent pattern is valid"),
                *build,
            )
        })
        .collect()
});

/// Question patterns, tried in order; `s` captures the subject and `p` a
/// property name.
#[rustfmt::skip]
const RULES: &[(&str, Build)] = &[
    // Members of a team.
    (r"^(?:who|which (?:people|users|engineers|developers|persons|folks))(?: all)? (?:is|are|works?|sits?) (?:in|on|part of|a member of|members of|with) (?P<s>.+)$", |s, _| Intent::Members(s)),
    (r"^who(?:'s| is) on (?P<s>.+)$", |s, _| Intent::Members(s)),
    (r"^(?:who are |list |show |name )?(?:the |all )?(?:members|membership|people|engineers|folks|users|persons) (?:of|in|on) (?P<s>.+)$", |s, _| Intent::Members(s)),
    (r"^(?:list |show |who are )?(?:the )?(?P<s>.+?)(?:'s|s')? (?:members|membership|roster|people|engineers)$", |s, _| Intent::Members(s)),
    // What a team owns.
    (r"^what (?:does|do) (?P<s>.+?) (?:own|maintain|run|look after|manage)$", |s, _| Intent::Owned(s)),
    (r"^(?:what|which \w+) (?:is|are) (?:owned|maintained|run|managed) by (?P<s>.+)$", |s, _| Intent::Owned(s)),
    (r"^(?:list |show )?(?:everything|all|things|stuff|what(?:'s| is)?) (?:that )?(?:is )?owned by (?P<s>.+)$", |s, _| Intent::Owned(s)),
    (r"^which (?:\w+ ){0,2}(?:does|do) (?P<s>.+?) (?:own|maintain|run|manage)$", |s, _| Intent::Owned(s)),
    (r"^(?P<s>.+?) (?:owns?|maintains?|runs?|manages?) what$", |s, _| Intent::Owned(s)),
    (r"^what (?:is|are) (?P<s>.+?) (?:responsible for|in charge of|accountable for|on the hook for)$", |s, _| Intent::Owned(s)),
    (r"^(?:what|which)(?: \w+){0,2} (?:belongs?|belonging|are assigned|is assigned) to (?P<s>.+)$", |s, _| Intent::Owned(s)),
    // Who owns something.
    (r"^who(?:'s| is)? (?:the )?(?:owner|owners|maintainer|maintainers) (?:of|for) (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^(?:what|which) (?:team|group|squad|person|people|user|users|teams)(?: is| are)? (?:owns?|maintains?|is responsible for|are responsible for|runs?|manages?|looks? after) (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^who (?:owns|maintains|is responsible for|are responsible for|runs|manages|looks after|takes care of|supports) (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^(?:the )?(?:owner|owners|ownership|maintainer|owning team|responsible team) (?:of|for) (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^who (?:do|should|can) i (?:ask|contact|talk to|ping|reach out to) (?:about|for|regarding) (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^who(?:'s| is) (?P<s>.+?)(?:'s|s')? owner$", |s, _| Intent::Owner(s)),
    (r"^(?:who|which team) owns? (?P<s>.+)$", |s, _| Intent::Owner(s)),
    (r"^(?P<s>.+?)(?:'s|s')? (?:owner|owners|ownership|maintainer|maintainers|owning team)$", |s, _| Intent::Owner(s)),
    // What depends on something.
    (r"^if (?P<s>.+?) (?:goes down|went down|is down|fails|failed|breaks|dies|has an outage|is unavailable)[, ]+(?:what|which|who).*$", |s, _| Intent::Dependents(s)),
    (r"^(?:what|which)(?: \w+){0,2} (?:breaks?|fails?|goes down|is affected|are affected|would break|would fail) (?:if|when) (?P<s>.+?) (?:goes down|is down|fails|breaks|dies|has an outage)$", |s, _| Intent::Dependents(s)),
    (r"^(?:what|who|which(?: \w+){0,2}|is anything|does anything|do any \w+|does any \w+|are any \w+)(?: still| else| currently)? (?:depends? on|depending on|uses?|using|consumes?|consuming|calls?|calling|relies on|rely on|needs?) (?P<s>.+)$", |s, _| Intent::Dependents(s)),
    (r"^(?:the )?(?:dependents|consumers|callers|users|clients) of (?P<s>.+)$", |s, _| Intent::Dependents(s)),
    (r"^(?P<s>.+?)(?:'s|s')? (?:dependents|consumers|callers|downstreams)$", |s, _| Intent::Dependents(s)),
    // What something depends on.
    (r"^(?:what|which)(?: \w+){0,2} (?:does|do) (?P<s>.+?) (?:consume)$", |s, _| Intent::Dependencies { subject: s, consumes_only: true }),
    (r"^(?:what|which)(?: \w+){0,2} (?:does|do|is|are) (?P<s>.+?) (?:depend on|depends on|dependent on|use|call|need|rely on|talk to|consume)$", |s, _| Intent::Dependencies { subject: s, consumes_only: false }),
    (r"^(?:list |show )?(?:the )?(?:dependencies|deps|upstreams|upstream services) (?:of|for) (?P<s>.+)$", |s, _| Intent::Dependencies { subject: s, consumes_only: false }),
    (r"^(?:list |show )?(?:the )?(?:apis|services|things) (?:consumed|used|called) by (?P<s>.+)$", |s, _| Intent::Dependencies { subject: s, consumes_only: true }),
    (r"^(?:list |show )?(?P<s>.+?)(?:'s|s')? (?:dependencies|deps|upstreams)$", |s, _| Intent::Dependencies { subject: s, consumes_only: false }),
    (r"^(?:what|which)(?: apis?)? (?:does|do|is|are) (?P<s>.+?) (?:provide|expose|offer|serve|providing|exposing)$", |s, _| Intent::Provides(s)),
    (r"^(?:list |show )?(?:the )?apis? (?:provided|exposed|offered) by (?P<s>.+)$", |s, _| Intent::Provides(s)),
    // Which system or domain something belongs to.
    (r"^(?:what|which) (?:system|domain|group|product|area)s? (?:is|are|does|do) (?P<s>.+?) (?:part of|in|belong to|belongs to|under)$", |s, _| Intent::PartOf(s)),
    (r"^(?:what|which) (?:system|domain|group|product)s? (?:contains|includes|has) (?P<s>.+)$", |s, _| Intent::PartOf(s)),
    (r"^(?:what|which) (?:is|are) (?P<s>.+?) (?:part of|a part of)$", |s, _| Intent::PartOf(s)),
    (r"^(?:is )?(?P<s>.+?) (?:is )?part of (?:which|what) (?:system|domain|group)$", |s, _| Intent::PartOf(s)),
    (r"^(?:where|how) (?:do|can|should) i (?:ask|reach|contact|find|talk to|ping|message) (?P<s>.+?)(?: a question| questions)?(?: on| in| via| over) slack$", |s, _| Intent::Property { property: "slack".to_string(), subject: s }),
    // Where something happens.
    (r"^(?:where do|where does|where is|where are|what handles|who handles|what deals with|who deals with)(?: the)? (?P<s>.+?)(?: come from| comes from| live| lives| get stored| stored| handled| managed| kept| happen| happens)?$", |s, _| Intent::Find(s)),
    // One property of something.
    (r"^what(?:'s| is| are) (?P<s>.+?) (?:written in|built with|built in|coded in|implemented in)$", |s, _| Intent::Property { property: "language".to_string(), subject: s }),
    (r"^what(?:'s| is| are) (?P<s>.+?) (?:for|used for|good for|about)$", |s, _| Intent::Describe(s)),
    (r"^what(?:'s| is| are|'re)? (?:the |its |their )?(?P<p>[a-z][\w .-]*?) (?:of|for|on|in) (?P<s>.+)$", |s, p| Intent::Property { property: p, subject: s }),
    (r"^what (?P<p>[a-z][\w-]*(?: [a-z][\w-]*)?) (?:is|are|does|do) (?P<s>.+?)(?: written in| written with| built with| built in| using| use| running on| run on| in| on| at| have| has)?$", |s, p| Intent::Property { property: p, subject: s }),
    (r"^(?:what(?:'s| is) )?(?P<s>[^ ]+?)(?:'s|s') (?P<p>[a-z][\w .-]*)$", |s, p| Intent::Property { property: p, subject: s }),
    (r"^(?:the )?(?P<p>[a-z][\w.-]*(?: [a-z][\w.-]*)?) (?:of|for) (?P<s>.+)$", |s, p| Intent::Property { property: p, subject: s }),
    (r"^(?:which|what) (?P<p>[a-z][\w-]*) (?:is|are) (?P<s>.+?) (?:in|on|at)$", |s, p| Intent::Property { property: p, subject: s }),
    // Everything about something.
    (r"^what (?:does|do) (?P<s>.+?) do$", |s, _| Intent::Describe(s)),
    (r"^(?:tell me about|describe|explain|info on|info about|information on|information about|details (?:of|on|about|for)|what do you know about|what can you tell me about|look up|lookup) (?P<s>.+)$", |s, _| Intent::Describe(s)),
    (r"^(?:what|who)(?:'s| is| are|'re) (?P<s>.+)$", |s, _| Intent::Describe(s)),
];
