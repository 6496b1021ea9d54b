//! Free-text and filtered search over the catalog.
//!
//! Text search works on the index written at import time (see `index`):
//! each query term is expanded to the stored terms it may mean (itself, up
//! to 20 terms it is a prefix of, and, when it is not a stored term, terms
//! within one or two typos found through shared trigrams), and postings are
//! read for the rarest term first, so a common word never makes a query
//! scan the catalog. Entities that match every query term rank first, then
//! by where the terms matched (identifier, title, tags, description); an
//! exact match of the whole query on an identifier, name or title ranks
//! above everything. When no entity matches every term, entities matching
//! some of them are returned instead.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use serde::Serialize;
use sqlx::Row;

use super::index::{Field, list_placeholders};
use super::normalize::{
    allowed_typos, compact, edit_distance, is_stopword, is_typo_tolerant, terms, trigrams,
};
use super::{Catalog, EntitySummary, Scope};
use filters::{Restriction, order_by_property};

mod filters;

pub(crate) use filters::filter_sql;

/// Postings read per query term; the rarest term's postings bound the
/// candidates of a text query.
const CANDIDATE_CAP: i64 = 2_000;

/// Largest page of results.
pub const MAX_LIMIT: usize = 100;

/// Rows per `IN (...)` list when candidates are checked in SQL. SQLite
/// binds numbered parameters in time quadratic in their number, so lists
/// stay short.
const ID_CHUNK: usize = 400;

/// A property or relation filter: the entity must have one of the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// A property name, or a relation name (then values are identifiers).
    pub name: String,
    pub values: Vec<String>,
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchRequest {
    pub text: Option<String>,
    pub blueprint: Option<String>,
    pub filters: Vec<Filter>,
    /// Property to order by (or `title`, `identifier`); without it, text
    /// results come by relevance and the rest by identifier.
    pub sort_by: Option<String>,
    pub descending: bool,
    pub limit: usize,
    pub offset: usize,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResponse {
    /// Matching entities in all pages.
    pub total: usize,
    /// True when a very common term capped the candidates, so more entities
    /// may match than `total` says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub total_is_lower_bound: bool,
    pub results: Vec<EntitySummary>,
}

/// A stored term a query term may mean, and how good a match it is.
#[derive(Debug, Clone)]
struct Expansion {
    term: String,
    quality: f64,
}

/// How one candidate entity matched.
#[derive(Debug, Default, Clone)]
struct Candidate {
    /// Best match per query term (index into the groups).
    per_group: Vec<f64>,
    /// Best match of the whole query in an identifier or title.
    phrase: f64,
}

impl Catalog {
    /// Searches the catalog.
    pub async fn search(&self, scope: &Scope, request: &SearchRequest) -> Result<SearchResponse> {
        let limit = request.limit.clamp(1, MAX_LIMIT);
        let query_terms = request
            .text
            .as_deref()
            .map(significant_terms)
            .unwrap_or_default();

        if query_terms.is_empty() {
            self.search_by_filters(scope, request, limit).await
        } else {
            self.search_by_text(scope, request, &query_terms, limit)
                .await
        }
    }

    async fn search_by_filters(
        &self,
        scope: &Scope,
        request: &SearchRequest,
        limit: usize,
    ) -> Result<SearchResponse> {
        let (where_sql, values) =
            filter_sql(scope, request.blueprint.as_deref(), &request.filters, 1);
        let mut next = values.len() + 1;
        let order_sql = match &request.sort_by {
            Some(property) => {
                let sql = order_by_property(property, request.descending, next);
                next += 1;
                sql
            }
            None => "e.blueprint, e.identifier".to_string(),
        };
        let sql = format!(
            "SELECT e.id AS id FROM entities e WHERE {where_sql} ORDER BY {order_sql} \
             LIMIT ${next} OFFSET ${}",
            next + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in &values {
            query = query.bind(value.clone());
        }
        if let Some(property) = &request.sort_by {
            query = query.bind(property.clone());
        }
        let rows = query
            .bind(limit as i64)
            .bind(request.offset as i64)
            .fetch_all(self.store().pool())
            .await
            .context("could not search the catalog")?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;

        let count_sql = format!("SELECT COUNT(*) AS n FROM entities e WHERE {where_sql}");
        let mut count_query = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for value in &values {
            count_query = count_query.bind(value.clone());
        }
        let total: i64 = count_query
            .fetch_one(self.store().pool())
            .await
            .context("could not count search results")?
            .try_get("n")?;

        Ok(SearchResponse {
            total: total as usize,
            total_is_lower_bound: false,
            results: self.summaries(scope, &ids).await?,
        })
    }

    async fn search_by_text(
        &self,
        scope: &Scope,
        request: &SearchRequest,
        query_terms: &[String],
        limit: usize,
    ) -> Result<SearchResponse> {
        let whole_query = query_terms.concat();
        let mut groups = Vec::new();
        for term in query_terms {
            groups.push(self.expand(term).await?);
        }
        let phrase = if query_terms.len() > 1 {
            self.expand(&whole_query).await?
        } else {
            Vec::new()
        };

        let restriction = Restriction::new(scope, request);
        let (candidates, capped) = self
            .collect_candidates(&groups, &phrase, &restriction)
            .await?;

        let group_count = groups
            .iter()
            .filter(|group| !group.is_empty())
            .count()
            .max(1);
        let mut scored: Vec<(i64, f64)> = candidates
            .iter()
            .map(|(id, candidate)| (*id, score(candidate, group_count)))
            .collect();
        let full_matches = scored.iter().any(|(_, score)| *score >= FULL_MATCH_BONUS);
        if full_matches {
            scored.retain(|(_, score)| *score >= FULL_MATCH_BONUS);
        }
        // Stop words are dropped from the terms but not from names: "team-a"
        // searches for "team" and still names the group team-a exactly.
        let literal = compact(request.text.as_deref().unwrap_or_default());
        self.add_exact_bonus(&mut scored, &[whole_query.as_str(), literal.as_str()])
            .await?;

        let total = scored.len();
        match &request.sort_by {
            Some(property) => {
                self.sort_by_property(&mut scored, property, request.descending)
                    .await?
            }
            None => {
                scored.sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)))
            }
        }
        let page: Vec<(i64, f64)> = scored
            .iter()
            .skip(request.offset)
            .take(limit)
            .copied()
            .collect();
        let ids: Vec<i64> = page.iter().map(|(id, _)| *id).collect();
        let mut results = self.summaries(scope, &ids).await?;
        for (summary, (_, score)) in results.iter_mut().zip(&page) {
            summary.exact_match = *score >= EXACT_BONUS * 0.8;
        }

        Ok(SearchResponse {
            total,
            total_is_lower_bound: capped,
            results,
        })
    }

    /// Returns the stored terms a query term may mean.
    async fn expand(&self, term: &str) -> Result<Vec<Expansion>> {
        let pool = self.store().pool();
        let mut expansions = Vec::new();

        // One query reads the term itself and, from three characters on,
        // up to 20 stored terms it is a prefix of: the term sorts first.
        let length = term.chars().count();
        let rows = if length >= 3 {
            sqlx::query(
                "SELECT term FROM search_vocab WHERE term >= $1 AND term < $2 ORDER BY term \
                 LIMIT 21",
            )
            .bind(term.to_string())
            .bind(format!("{term}\u{10FFFF}"))
            .fetch_all(pool)
            .await
        } else {
            sqlx::query("SELECT term FROM search_vocab WHERE term = $1")
                .bind(term.to_string())
                .fetch_all(pool)
                .await
        }
        .context("could not read the search vocabulary")?;
        let mut has_exact = false;
        for row in rows {
            let stored: String = row.try_get("term")?;
            if stored == term {
                has_exact = true;
                expansions.push(Expansion {
                    term: stored,
                    quality: 1.0,
                });
            } else if expansions.len() < 20 + usize::from(has_exact) {
                let ratio = length as f64 / stored.chars().count() as f64;
                expansions.push(Expansion {
                    term: stored,
                    quality: 0.5 + 0.3 * ratio,
                });
            }
        }

        let typos = allowed_typos(term);
        if !has_exact && typos > 0 && is_typo_tolerant(term) {
            expansions.extend(self.fuzzy_terms(term, typos).await?);
        }
        Ok(expansions)
    }

    /// Finds stored terms within `typos` edits of `term` through shared
    /// trigrams: one edit changes at most three of a term's trigrams.
    async fn fuzzy_terms(&self, term: &str, typos: usize) -> Result<Vec<Expansion>> {
        let grams = trigrams(term);
        let length = term.chars().count() as i64;
        let minimum_shared = (grams.len() as i64 - 3 * typos as i64).max(1);

        let sql = format!(
            "SELECT term, COUNT(*) AS shared FROM search_grams WHERE gram IN ({}) \
             AND term_length BETWEEN ${} AND ${} GROUP BY term HAVING COUNT(*) >= ${} \
             ORDER BY shared DESC, term LIMIT 300",
            list_placeholders(1, grams.len()),
            grams.len() + 1,
            grams.len() + 2,
            grams.len() + 3
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for gram in &grams {
            query = query.bind(gram.clone());
        }
        let rows = query
            .bind(length - typos as i64)
            .bind(length + typos as i64)
            .bind(minimum_shared)
            .fetch_all(self.store().pool())
            .await
            .context("could not look up similar search terms")?;

        let mut matches = Vec::new();
        for row in rows {
            let candidate: String = row.try_get("term")?;
            if let Some(distance) = edit_distance(term, &candidate, typos) {
                let quality = if distance <= 1 { 0.6 } else { 0.45 };
                matches.push((distance, candidate, quality));
            }
        }
        matches.sort_by(|left, right| left.0.cmp(&right.0).then(left.1.cmp(&right.1)));
        Ok(matches
            .into_iter()
            .take(20)
            .map(|(_, term, quality)| Expansion { term, quality })
            .collect())
    }

    /// Reads postings, rarest query term first, and scores what they hit.
    /// Returns the candidates and whether a cap cut them short.
    async fn collect_candidates(
        &self,
        groups: &[Vec<Expansion>],
        phrase: &[Expansion],
        restriction: &Restriction,
    ) -> Result<(HashMap<i64, Candidate>, bool)> {
        let mut candidates: HashMap<i64, Candidate> = HashMap::new();
        let mut capped = false;
        let new_candidate = || Candidate {
            per_group: vec![0.0; groups.len()],
            phrase: 0.0,
        };

        let searched: Vec<usize> = (0..groups.len())
            .filter(|index| !groups[*index].is_empty())
            .collect();
        let mut sizes = Vec::new();
        if let [only] = searched[..] {
            // With one term there is nothing to order, so its postings are
            // not counted first.
            sizes.push((0, only));
        } else {
            for index in searched {
                sizes.push((
                    self.count_postings(&groups[index], restriction).await?,
                    index,
                ));
            }
        }
        sizes.sort();

        if let Some((rarest_size, rarest)) = sizes.first().copied() {
            let mut postings = self.postings(&groups[rarest], restriction, None).await?;
            capped |= rarest_size > CANDIDATE_CAP || postings.len() > CANDIDATE_CAP as usize;
            postings.truncate(CANDIDATE_CAP as usize);
            for (id, term, field) in postings {
                let quality = quality_of(&groups[rarest], &term) * field.weight();
                let candidate = candidates.entry(id).or_insert_with(new_candidate);
                candidate.per_group[rarest] = candidate.per_group[rarest].max(quality);
            }
            let ids: Vec<i64> = candidates.keys().copied().collect();
            for (_, index) in sizes.iter().skip(1) {
                for (id, term, field) in self
                    .postings(&groups[*index], restriction, Some(&ids))
                    .await?
                {
                    let quality = quality_of(&groups[*index], &term) * field.weight();
                    if let Some(candidate) = candidates.get_mut(&id) {
                        candidate.per_group[*index] = candidate.per_group[*index].max(quality);
                    }
                }
            }
        }

        if !phrase.is_empty() {
            for (id, term, field) in self.postings(phrase, restriction, None).await? {
                if matches!(field, Field::Identifier | Field::Title) {
                    let quality = quality_of(phrase, &term) * field.weight();
                    let candidate = candidates.entry(id).or_insert_with(new_candidate);
                    candidate.phrase = candidate.phrase.max(quality);
                }
            }
        }

        let any_full = candidates.values().any(|candidate| {
            candidate.phrase > 0.0 || candidate.per_group.iter().all(|q| *q > 0.0)
        });
        if !any_full && sizes.len() > 1 {
            // No entity has every term: fall back to entities with some.
            for (_, index) in sizes.iter().skip(1) {
                for (id, term, field) in self.postings(&groups[*index], restriction, None).await? {
                    let quality = quality_of(&groups[*index], &term) * field.weight();
                    let candidate = candidates.entry(id).or_insert_with(new_candidate);
                    candidate.per_group[*index] = candidate.per_group[*index].max(quality);
                }
            }
        }
        Ok((candidates, capped))
    }

    async fn count_postings(&self, group: &[Expansion], restriction: &Restriction) -> Result<i64> {
        let (from_sql, where_sql) = restriction.sql(group.len());
        let sql = format!(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM {from_sql} WHERE t.term IN ({}){where_sql} \
             LIMIT {}) AS capped",
            list_placeholders(1, group.len()),
            CANDIDATE_CAP + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for expansion in group {
            query = query.bind(expansion.term.clone());
        }
        for value in &restriction.values {
            query = query.bind(value.clone());
        }
        Ok(query
            .fetch_one(self.store().pool())
            .await
            .context("could not count search postings")?
            .try_get("n")?)
    }

    /// Reads postings of the group's terms that pass the restriction,
    /// optionally only for some ids.
    async fn postings(
        &self,
        group: &[Expansion],
        restriction: &Restriction,
        only: Option<&[i64]>,
    ) -> Result<Vec<(i64, String, Field)>> {
        let terms_sql = list_placeholders(1, group.len());
        let (from_sql, where_sql) = restriction.sql(group.len());
        let first_id = group.len() + restriction.values.len() + 1;
        let chunks: Vec<&[i64]> = match only {
            Some([]) => return Ok(Vec::new()),
            Some(ids) => ids.chunks(ID_CHUNK).collect(),
            None => vec![&[]],
        };

        let mut postings = Vec::new();
        for chunk in chunks {
            let sql = if only.is_some() {
                format!(
                    "SELECT t.entity_id AS entity_id, t.term AS term, t.field AS field \
                     FROM {from_sql} WHERE t.term IN ({terms_sql}){where_sql} \
                     AND t.entity_id IN ({})",
                    list_placeholders(first_id, chunk.len())
                )
            } else {
                format!(
                    "SELECT t.entity_id AS entity_id, t.term AS term, t.field AS field \
                     FROM {from_sql} WHERE t.term IN ({terms_sql}){where_sql} \
                     LIMIT {}",
                    CANDIDATE_CAP + 1
                )
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for expansion in group {
                query = query.bind(expansion.term.clone());
            }
            for value in &restriction.values {
                query = query.bind(value.clone());
            }
            for id in chunk {
                query = query.bind(*id);
            }
            let rows = query
                .fetch_all(self.store().pool())
                .await
                .context("could not read search postings")?;
            for row in rows {
                postings.push((
                    row.try_get("entity_id")?,
                    row.try_get("term")?,
                    Field::from_code(row.try_get("field")?),
                ));
            }
        }
        Ok(postings)
    }

    /// Raises entities whose identifier, name or title is the whole query.
    async fn add_exact_bonus(&self, scored: &mut [(i64, f64)], queries: &[&str]) -> Result<()> {
        scored.sort_by(|left, right| right.1.total_cmp(&left.1).then(left.0.cmp(&right.0)));
        let top: Vec<i64> = scored.iter().take(200).map(|(id, _)| *id).collect();
        if top.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT e.id AS id, e.identifier AS identifier, e.name AS name, e.title AS title, \
             e.blueprint AS blueprint, b.title AS blueprint_title FROM entities e \
             LEFT JOIN blueprints b ON b.identifier = e.blueprint WHERE e.id IN ({})",
            list_placeholders(1, top.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &top {
            query = query.bind(*id);
        }
        let mut bonus = HashMap::new();
        for row in query
            .fetch_all(self.store().pool())
            .await
            .context("could not rank search results")?
        {
            let identifier: String = row.try_get("identifier")?;
            let name: String = row.try_get("name")?;
            let title: String = row.try_get("title")?;
            let kinds = [
                compact(&row.try_get::<String, _>("blueprint")?),
                compact(
                    &row.try_get::<Option<String>, _>("blueprint_title")?
                        .unwrap_or_default(),
                ),
            ];
            // "payments service" names the service payments as exactly as
            // "payments" does.
            let names_exactly = |candidate: &str| {
                let candidate = compact(candidate);
                queries.iter().any(|whole_query| {
                    candidate == *whole_query
                        || kinds.iter().any(|kind| {
                            !kind.is_empty()
                                && (format!("{candidate}{kind}") == *whole_query
                                    || format!("{kind}{candidate}") == *whole_query)
                        })
                })
            };
            let extra = if names_exactly(&identifier) || names_exactly(&name) {
                EXACT_BONUS
            } else if names_exactly(&title) {
                EXACT_BONUS * 0.8
            } else {
                0.0
            };
            bonus.insert(row.try_get::<i64, _>("id")?, extra);
        }
        for (id, score) in scored.iter_mut() {
            *score += bonus.get(id).copied().unwrap_or(0.0);
        }
        Ok(())
    }

    async fn sort_by_property(
        &self,
        scored: &mut [(i64, f64)],
        property: &str,
        descending: bool,
    ) -> Result<()> {
        let mut keys: HashMap<i64, (Option<f64>, Option<String>)> = HashMap::new();
        let ids: Vec<i64> = scored.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(ID_CHUNK) {
            let sql = match property {
                "title" | "identifier" => format!(
                    "SELECT id AS entity_id, NULL AS number, LOWER({property}) AS text \
                     FROM entities WHERE id IN ({})",
                    list_placeholders(2, chunk.len())
                ),
                _ => format!(
                    "SELECT entity_id, MAX(num_value) AS number, MAX(value) AS text \
                     FROM entity_property_values WHERE name = $1 AND entity_id IN ({}) \
                     GROUP BY entity_id",
                    list_placeholders(2, chunk.len())
                ),
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(property.to_string());
            if matches!(property, "title" | "identifier") {
                query = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT id AS entity_id, LOWER({property}) AS text FROM entities \
                         WHERE id IN ({})",
                    list_placeholders(1, chunk.len())
                )));
            }
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query
                .fetch_all(self.store().pool())
                .await
                .context("could not sort search results")?
            {
                let number: Option<f64> = row.try_get("number").unwrap_or(None);
                keys.insert(row.try_get("entity_id")?, (number, row.try_get("text")?));
            }
        }

        scored.sort_by(|left, right| {
            let (left_key, right_key) = (keys.get(&left.0), keys.get(&right.0));
            let ordering = match (left_key, right_key) {
                (None, None) => std::cmp::Ordering::Equal,
                // Entities without the property go last either way.
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (Some(_), None) => return std::cmp::Ordering::Less,
                (Some((Some(left), _)), Some((Some(right), _))) => left.total_cmp(right),
                (Some((_, left)), Some((_, right))) => left.cmp(right),
            };
            let ordering = if descending {
                ordering.reverse()
            } else {
                ordering
            };
            ordering.then(right.1.total_cmp(&left.1))
        });
        Ok(())
    }
}

/// Score added to entities that match every query term (or the whole
/// query as one phrase); results above it are full matches.
const FULL_MATCH_BONUS: f64 = 100.0;

/// Score added when the whole query is an entity's identifier or name.
const EXACT_BONUS: f64 = 1_000.0;

fn score(candidate: &Candidate, group_count: usize) -> f64 {
    let matched = candidate
        .per_group
        .iter()
        .filter(|quality| **quality > 0.0)
        .count();
    let sum: f64 = candidate.per_group.iter().sum();
    let full = matched >= group_count || candidate.phrase > 0.0;
    let coverage = matched as f64 / group_count as f64;
    let mut total = sum + coverage + candidate.phrase * 3.0;
    if full {
        total += FULL_MATCH_BONUS;
    }
    total
}

fn quality_of(group: &[Expansion], term: &str) -> f64 {
    group
        .iter()
        .filter(|expansion| expansion.term == term)
        .map(|expansion| expansion.quality)
        .fold(0.0, f64::max)
}

/// Returns the query's terms without stop words (all of them if only stop
/// words remain), deduplicated, in order.
pub fn significant_terms(text: &str) -> Vec<String> {
    let all = terms(text);
    let mut kept: Vec<String> = all
        .iter()
        .filter(|term| !is_stopword(term))
        .cloned()
        .collect();
    if kept.is_empty() {
        kept = all;
    }
    let mut seen = HashSet::new();
    kept.retain(|term| seen.insert(term.clone()));
    kept.truncate(12);
    kept
}

/// Groups filter pairs by name, as a tool's arguments give them.
pub fn filters_from_map(map: &BTreeMap<String, Vec<String>>) -> Vec<Filter> {
    map.iter()
        .map(|(name, values)| Filter {
            name: name.clone(),
            values: values.clone(),
        })
        .collect()
}
