//! Text normalisation shared by the search index and search queries.
//!
//! A *term* is a lower-case run of letters or digits. Identifiers, titles
//! and tags are split into terms at separators and at camelCase boundaries
//! ("artist-lookup" and "artistLookup" both give "artist" and "lookup"), and
//! their *compact* form (all terms joined: "artistlookup") is indexed too,
//! so "artist lookup", "Artist-Lookup" and "artistlookup" find the same
//! entity. Typos are matched through the trigrams of each term.

/// Splits text into lower-case terms.
pub fn terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut previous: Option<char> = None;

    for character in text.chars() {
        if !character.is_alphanumeric() {
            flush(&mut current, &mut terms);
            previous = None;
            continue;
        }
        // Split "artistLookup" before the upper-case letter and "v2api"
        // nowhere: digits stay with their neighbours.
        let camel_boundary =
            character.is_uppercase() && previous.is_some_and(|previous| previous.is_lowercase());
        if camel_boundary {
            flush(&mut current, &mut terms);
        }
        current.extend(character.to_lowercase());
        previous = Some(character);
    }
    flush(&mut current, &mut terms);
    terms
}

fn flush(current: &mut String, terms: &mut Vec<String>) {
    if !current.is_empty() {
        terms.push(std::mem::take(current));
    }
}

/// Returns the compact form of text: its terms joined with nothing between.
pub fn compact(text: &str) -> String {
    text.chars()
        .filter(|character| character.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Returns the trigrams of a term padded with `^` and `$`, so a term of n
/// characters has n trigrams and short terms still get some.
pub fn trigrams(term: &str) -> Vec<String> {
    let padded: Vec<char> = std::iter::once('^')
        .chain(term.chars())
        .chain(std::iter::once('$'))
        .collect();
    let mut grams: Vec<String> = padded
        .windows(3)
        .map(|window| window.iter().collect())
        .collect();
    grams.sort();
    grams.dedup();
    grams
}

/// Reports whether typos in a term are looked up through its trigrams.
/// Terms with a digit are not: a version, ticket or build number with a
/// typo names another thing, and numbered identifiers would otherwise fill
/// the trigram table of a large catalog. Prefix search still finds them.
pub fn is_typo_tolerant(term: &str) -> bool {
    !term.chars().any(|character| character.is_ascii_digit())
}

/// Returns the optimal-string-alignment distance between two terms (edits:
/// insert, delete, substitute, swap two neighbours), or `None` once it is
/// certain to exceed `max`.
pub fn edit_distance(left: &str, right: &str, max: usize) -> Option<usize> {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    if left.len().abs_diff(right.len()) > max {
        return None;
    }

    let width = right.len() + 1;
    let mut before_previous = vec![0usize; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current = vec![0usize; width];

    for i in 1..=left.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=right.len() {
            let cost = usize::from(left[i - 1] != right[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && left[i - 1] == right[j - 2] && left[i - 2] == right[j - 1] {
                best = best.min(before_previous[j - 2] + 1);
            }
            current[j] = best;
            row_min = row_min.min(best);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut before_previous, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }

    let distance = previous[right.len()];
    (distance <= max).then_some(distance)
}

/// Returns how many typos a query term of this length may carry: none for
/// short terms, where one edit turns a word into another, then one, then two.
pub fn allowed_typos(term: &str) -> usize {
    match term.chars().count() {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

/// Words that carry no meaning in a catalog query.
pub fn is_stopword(term: &str) -> bool {
    matches!(
        term,
        "a" | "an"
            | "and"
            | "any"
            | "are"
            | "for"
            | "in"
            | "is"
            | "it"
            | "of"
            | "on"
            | "or"
            | "our"
            | "the"
            | "to"
            | "we"
            | "with"
    )
}
