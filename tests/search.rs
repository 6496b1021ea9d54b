//! Catalog search over the Backstage examples on SQLite and PostgreSQL:
//! name forms, typos, filters, sorting, limits and blueprint scopes.

use std::collections::BTreeSet;

use agentdesk::catalog::{Catalog, EntityRef, Filter, Scope, SearchRequest, SearchResponse};
use agentdesk::clock::SharedClock;
use agentdesk::llm::ToolCall;
use agentdesk::tools::{ToolContext, ToolOutcome, ToolRegistry};
use serde_json::{Value, json};

use crate::helpers::{TestDatabase, backstage_fixtures, import, manual_clock, on_both_databases};

on_both_databases!(
    name_forms_find_exact_match_first,
    typos_still_find_entity,
    blueprint_and_property_filters_apply,
    sort_by_follows_order,
    limits_are_validated,
    scope_hides_other_blueprints,
    lower_bound_only_past_candidate_cap,
);

/// Postings of one term read for candidates; the response says its total
/// is a lower bound only when a term has more.
const CANDIDATE_CAP: usize = 2_000;

/// Writes `count` Port entities titled "Zebra" with nothing else indexed
/// under that word or words it is a prefix of, so "zebra" has `count`
/// postings.
fn zebra_entities(folder: &std::path::Path, count: usize) -> std::path::PathBuf {
    let entities: Vec<Value> = (0..count)
        .map(|index| {
            json!({
                "identifier": format!("animal-{index}"),
                "title": "Zebra",
                "blueprint": "animal",
                "properties": {},
                "relations": {},
            })
        })
        .collect();
    let path = folder.join("entities.json");
    std::fs::write(&path, json!({"ok": true, "entities": entities}).to_string()).unwrap();
    path
}

/// A term with exactly as many postings as the candidate cap is counted in
/// full; one more makes the total a lower bound.
async fn lower_bound_only_past_candidate_cap(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::TempDir::new().unwrap();
    let catalog = Catalog::new(store.clone());

    import(
        &store,
        &clock,
        &[zebra_entities(folder.path(), CANDIDATE_CAP)],
    )
    .await;
    let at_cap = search_text(&catalog, "zebra").await;
    assert_eq!(at_cap.total, CANDIDATE_CAP);
    assert!(!at_cap.total_is_lower_bound, "every posting was read");

    import(
        &store,
        &clock,
        &[zebra_entities(folder.path(), CANDIDATE_CAP + 1)],
    )
    .await;
    let past_cap = search_text(&catalog, "zebra").await;
    assert_eq!(past_cap.total, CANDIDATE_CAP);
    assert!(past_cap.total_is_lower_bound, "a posting was left unread");
}

async fn backstage_catalog(database: &TestDatabase) -> Catalog {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    import(&store, &clock, &[backstage_fixtures()]).await;
    Catalog::new(store)
}

async fn search_text(catalog: &Catalog, text: &str) -> SearchResponse {
    let request = SearchRequest {
        text: Some(text.to_string()),
        limit: 10,
        ..SearchRequest::default()
    };
    catalog
        .search(&Scope::All, &request)
        .await
        .unwrap_or_else(|error| panic!("searching {text:?} failed: {error:#}"))
}

fn references(response: &SearchResponse) -> Vec<&str> {
    response
        .results
        .iter()
        .map(|summary| summary.reference.as_str())
        .collect()
}

async fn call_tool(catalog: &Catalog, scope: Scope, name: &str, arguments: Value) -> ToolOutcome {
    let context = ToolContext {
        catalog: catalog.clone(),
        scope,
        session: None,
    };
    let call = ToolCall {
        id: "call-1".to_string(),
        name: name.to_string(),
        arguments: arguments.to_string(),
    };
    ToolRegistry::catalog_tools().execute(&context, &call).await
}

fn tool_output(outcome: &ToolOutcome) -> Value {
    assert!(!outcome.is_error, "the tool failed: {}", outcome.content);
    serde_json::from_str(&outcome.content).expect("tool output is JSON")
}

async fn name_forms_find_exact_match_first(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;

    for text in [
        "artist lookup",
        "Artist-Lookup",
        "artist-lookup",
        "ArtistLookup",
    ] {
        let response = search_text(&catalog, text).await;
        let first = response
            .results
            .first()
            .unwrap_or_else(|| panic!("{text:?} found nothing"));
        assert_eq!(
            first.reference, "component:artist-lookup",
            "first result for {text:?}"
        );
        assert!(
            first.exact_match,
            "{text:?} is an exact match of artist-lookup"
        );
        assert!(
            response.results[1..].iter().all(|other| !other.exact_match),
            "only artist-lookup is an exact match for {text:?}: {:?}",
            references(&response)
        );
    }
}

async fn typos_still_find_entity(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;

    for (text, expected) in [
        ("artst-lookup", "component:artist-lookup"),
        ("artist-lokup", "component:artist-lookup"),
        ("artst-lokup", "component:artist-lookup"),
        ("artsit lookup", "component:artist-lookup"),
    ] {
        let response = search_text(&catalog, text).await;
        assert_eq!(
            references(&response).first().copied(),
            Some(expected),
            "first result for {text:?}: {:?}",
            references(&response)
        );
    }

    let response = search_text(&catalog, "wayback-serach").await;
    let top_two: BTreeSet<&str> = references(&response).into_iter().take(2).collect();
    assert_eq!(
        top_two,
        BTreeSet::from(["api:wayback-search", "component:wayback-search"]),
        "both wayback-search entities lead for \"wayback-serach\""
    );
}

async fn blueprint_and_property_filters_apply(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;

    let apis = catalog
        .search(
            &Scope::All,
            &SearchRequest {
                text: Some("wayback".to_string()),
                blueprint: Some("api".to_string()),
                limit: 20,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    let found: BTreeSet<&str> = references(&apis).into_iter().collect();
    assert_eq!(
        found,
        BTreeSet::from(["api:wayback-archive", "api:wayback-search"]),
        "a text search limited to the api blueprint"
    );

    let production = vec![Filter {
        name: "lifecycle".to_string(),
        values: vec!["production".to_string()],
    }];
    let components = catalog
        .search(
            &Scope::All,
            &SearchRequest {
                blueprint: Some("component".to_string()),
                filters: production.clone(),
                limit: 100,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        components.total,
        11,
        "production components: {:?}",
        references(&components)
    );
    assert_eq!(components.results.len(), 11);
    for summary in &components.results {
        assert_eq!(summary.blueprint, "component", "{}", summary.reference);
        assert_eq!(
            summary.properties["lifecycle"], "production",
            "{}",
            summary.reference
        );
    }
    assert!(!references(&components).contains(&"component:artist-lookup"));

    let counted = catalog
        .count(&Scope::All, Some("component"), &production, None)
        .await
        .unwrap();
    assert_eq!(counted.total, 11);

    let by_tool = call_tool(
        &catalog,
        Scope::All,
        "search_entities",
        json!({ "query": "wayback", "blueprint": "Components", "filters": { "lifecycle": "production" } }),
    )
    .await;
    let output = tool_output(&by_tool);
    let results = output["results"].as_array().expect("a result list");
    assert!(!results.is_empty(), "{output}");
    for result in results {
        assert_eq!(result["blueprint"], "component", "{result}");
        assert_eq!(result["properties"]["lifecycle"], "production", "{result}");
    }

    let by_owner = call_tool(
        &catalog,
        Scope::All,
        "search_entities",
        json!({ "blueprint": "component", "filters": { "ownedBy": "group:team-a" }, "limit": 100 }),
    )
    .await;
    let output = tool_output(&by_owner);
    let owned: BTreeSet<&str> = output["results"]
        .as_array()
        .expect("a result list")
        .iter()
        .filter_map(|result| result["ref"].as_str())
        .collect();
    assert!(owned.contains("component:artist-lookup"), "{output}");
    assert!(
        !owned.contains("component:petstore"),
        "petstore belongs to sre: {output}"
    );
}

async fn sort_by_follows_order(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;

    let mut listed = Vec::new();
    for order in ["asc", "desc"] {
        let outcome = call_tool(
            &catalog,
            Scope::All,
            "search_entities",
            json!({ "blueprint": "component", "sort_by": "identifier", "order": order, "limit": 100 }),
        )
        .await;
        let output = tool_output(&outcome);
        let identifiers: Vec<String> = output["results"]
            .as_array()
            .expect("a result list")
            .iter()
            .map(|result| result["identifier"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(identifiers.len(), 14, "{order}");
        listed.push(identifiers);
    }

    let mut sorted = listed[0].clone();
    sorted.sort();
    assert_eq!(listed[0], sorted, "ascending by identifier");
    let mut reversed = listed[1].clone();
    reversed.reverse();
    assert_eq!(reversed, sorted, "descending by identifier");

    let by_lifecycle = catalog
        .search(
            &Scope::All,
            &SearchRequest {
                blueprint: Some("component".to_string()),
                sort_by: Some("lifecycle".to_string()),
                descending: true,
                limit: 100,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    let lifecycles: Vec<&str> = by_lifecycle
        .results
        .iter()
        .map(|summary| summary.properties["lifecycle"].as_str().unwrap_or(""))
        .collect();
    let mut expected = lifecycles.clone();
    expected.sort_by(|left, right| right.cmp(left));
    assert_eq!(lifecycles, expected, "descending by a property");
    assert_eq!(lifecycles.first(), Some(&"production"));

    let text_sorted = catalog
        .search(
            &Scope::All,
            &SearchRequest {
                text: Some("wayback".to_string()),
                sort_by: Some("identifier".to_string()),
                limit: 100,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    let identifiers: Vec<&str> = text_sorted
        .results
        .iter()
        .map(|summary| summary.identifier.as_str())
        .collect();
    let mut expected = identifiers.clone();
    expected.sort_unstable();
    assert_eq!(identifiers, expected, "a text search sorted by identifier");
    assert!(identifiers.len() >= 4, "{identifiers:?}");
}

async fn limits_are_validated(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;

    for (arguments, expected) in [
        (
            json!({ "query": "wayback", "limit": 0 }),
            "limit must be from 1 to 100, got 0",
        ),
        (
            json!({ "query": "wayback", "limit": 101 }),
            "limit must be from 1 to 100, got 101",
        ),
        (
            json!({ "query": "wayback", "limit": -1 }),
            "limit must be from 1 to 100, got -1",
        ),
        (
            json!({ "query": "wayback", "offset": -5 }),
            "offset must be 0 or more, got -5",
        ),
        (
            json!({ "query": "wayback", "order": "sideways" }),
            "order must be \"asc\" or \"desc\"",
        ),
    ] {
        let outcome = call_tool(&catalog, Scope::All, "search_entities", arguments.clone()).await;
        assert!(
            outcome.is_error,
            "{arguments} must be rejected: {}",
            outcome.content
        );
        let message = outcome.error.unwrap_or_default();
        assert!(
            message.contains(expected),
            "{arguments}: {message:?} says {expected:?}"
        );
    }

    let page = call_tool(
        &catalog,
        Scope::All,
        "search_entities",
        json!({ "blueprint": "user", "limit": 5, "offset": 15 }),
    )
    .await;
    let output = tool_output(&page);
    assert_eq!(output["total"], 17);
    assert_eq!(
        output["results"].as_array().map(Vec::len),
        Some(2),
        "{output}"
    );

    let clamped = catalog
        .search(
            &Scope::All,
            &SearchRequest {
                blueprint: Some("user".to_string()),
                limit: 10_000,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        clamped.results.len(),
        17,
        "a large limit is cut to the maximum page"
    );
}

fn components_and_apis() -> Scope {
    Scope::Blueprints(BTreeSet::from(["component".to_string(), "api".to_string()]))
}

fn assert_in_scope(reference: &str, context: &str) {
    assert!(
        reference.starts_with("component:") || reference.starts_with("api:"),
        "{context}: {reference} is outside the scope"
    );
}

async fn scope_hides_other_blueprints(database: TestDatabase) {
    let catalog = backstage_catalog(&database).await;
    let scope = components_and_apis();

    for text in ["team", "guest", "artist", "wayback", "playback", "acme"] {
        let request = SearchRequest {
            text: Some(text.to_string()),
            limit: 100,
            ..SearchRequest::default()
        };
        let response = catalog.search(&scope, &request).await.unwrap();
        for reference in references(&response) {
            assert_in_scope(reference, &format!("search {text:?}"));
        }
        assert_eq!(response.total, response.results.len(), "search {text:?}");
    }
    let production = catalog
        .search(
            &scope,
            &SearchRequest {
                filters: vec![Filter {
                    name: "lifecycle".to_string(),
                    values: vec!["production".to_string()],
                }],
                limit: 100,
                ..SearchRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(production.total, 15, "production components and APIs");
    for reference in references(&production) {
        assert_in_scope(reference, "filter search");
    }

    let artist_lookup = catalog
        .get(&scope, &EntityRef::new("component", "artist-lookup"))
        .await
        .unwrap()
        .expect("artist-lookup is in scope");
    assert!(
        artist_lookup.owners.is_empty(),
        "its owner is a group: {:?}",
        artist_lookup.owners
    );
    for link in &artist_lookup.relations {
        assert_in_scope(&link.target.reference, "relation of artist-lookup");
    }
    let wayback_api = catalog
        .get(&scope, &EntityRef::new("api", "wayback-search"))
        .await
        .unwrap()
        .expect("the wayback-search API is in scope");
    assert!(
        !wayback_api.referenced_by.is_empty(),
        "the component provides it"
    );
    for link in &wayback_api.referenced_by {
        assert_in_scope(&link.source.reference, "incoming relation of the API");
    }
    assert_eq!(
        wayback_api.referenced_by_total as usize,
        wayback_api.referenced_by.len()
    );
    let team_a = EntityRef::new("group", "team-a");
    assert!(catalog.get(&scope, &team_a).await.unwrap().is_none());
    assert!(catalog.resolve(&scope, "guest").await.unwrap().is_empty());

    let counts = catalog.count(&scope, None, &[], None).await.unwrap();
    assert_eq!(counts.total, 18);
    let counted: Vec<&str> = counts.by_blueprint.keys().map(String::as_str).collect();
    assert_eq!(counted, ["api", "component"]);
    let groups = catalog
        .count(&scope, Some("group"), &[], None)
        .await
        .unwrap();
    assert_eq!(
        groups.total, 0,
        "counting an out-of-scope blueprint finds nothing"
    );

    let blueprints = catalog.list_blueprints(&scope).await.unwrap();
    let listed: Vec<&str> = blueprints
        .iter()
        .map(|info| info.identifier.as_str())
        .collect();
    assert_eq!(listed, ["api", "component"]);
    for info in &blueprints {
        for (name, relation) in &info.relations {
            assert!(
                relation.target.is_empty() || scope.allows(&relation.target),
                "{}.{name} points at {}",
                info.identifier,
                relation.target
            );
        }
    }

    let group_search = call_tool(
        &catalog,
        scope.clone(),
        "search_entities",
        json!({ "blueprint": "group" }),
    )
    .await;
    assert!(group_search.is_error, "{}", group_search.content);
    let message = group_search.error.unwrap_or_default();
    assert!(message.contains("unknown blueprint"), "{message}");
    assert!(
        !message.contains("group,") && !message.contains("user"),
        "{message}"
    );

    let member = call_tool(
        &catalog,
        scope,
        "get_entity",
        json!({ "entity": "user:guest" }),
    )
    .await;
    assert!(member.is_error, "{}", member.content);
}
