//! Catalog import on SQLite and PostgreSQL: the Backstage and Port fixtures,
//! re-imports, broken files, same-named entities, Location targets, the demo
//! catalog and `agentdesk catalog stats`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agentdesk::catalog::import::{ImportError, import_paths};
use agentdesk::catalog::{Catalog, EntityDetail, EntityRef, Scope, demo};
use agentdesk::clock::SharedClock;
use agentdesk::llm::ToolCall;
use agentdesk::tools::{ToolContext, ToolRegistry};
use serde_json::Value;

use crate::helpers::{
    TestDatabase, backstage_fixtures, copy_tree, describe_output, fixture_path, import,
    manual_clock, on_both_databases, run_agentdesk,
};

on_both_databases!(
    fixtures_import_with_counts_and_warnings,
    reimport_changes_nothing,
    edited_file_updates_one_entity,
    deleted_files_remove_their_entities,
    invalid_files_fail_and_keep_catalog,
    same_named_entities_stay_separate,
    location_targets_are_followed,
    first_real_import_removes_demo,
    port_api_shape_resolves_relations,
    stats_command_prints_counts,
    entity_moved_to_earlier_path_is_kept,
);

/// Blueprints inferred from the Backstage examples, with their entities.
const BACKSTAGE_COUNTS: &[(&str, i64)] = &[
    ("api", 4),
    ("component", 14),
    ("domain", 3),
    ("group", 8),
    ("location", 1),
    ("resource", 1),
    ("system", 3),
    ("user", 17),
];

async fn blueprint_counts(catalog: &Catalog) -> BTreeMap<String, i64> {
    catalog
        .stats()
        .await
        .expect("catalog stats load")
        .into_iter()
        .map(|line| (line.identifier, line.entities))
        .collect()
}

async fn entity(catalog: &Catalog, blueprint: &str, identifier: &str) -> Option<EntityDetail> {
    catalog
        .get(&Scope::All, &EntityRef::new(blueprint, identifier))
        .await
        .expect("the entity query runs")
}

/// Copies the whole catalog fixture folder into a temporary folder.
fn catalog_copy() -> (tempfile::TempDir, PathBuf) {
    let folder = tempfile::tempdir().expect("create a temporary folder");
    let root = folder.path().join("catalog");
    copy_tree(&fixture_path("catalog"), &root);
    (folder, root)
}

fn assert_warning(warnings: &[String], expected: &str) {
    assert!(
        warnings.iter().any(|warning| warning.contains(expected)),
        "no warning contains {expected:?}; the warnings are:\n{}",
        warnings.join("\n")
    );
}

async fn fixtures_import_with_counts_and_warnings(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let report = import(&store, &clock, &[fixture_path("catalog")]).await;

    assert_eq!(report.created, 51, "50 Backstage entities and 1 Location");
    assert_eq!(report.updated, 0);
    assert_eq!(report.removed, 0);
    assert!(!report.demo_removed);

    let counts = blueprint_counts(&Catalog::new(store.clone())).await;
    for (blueprint, expected) in BACKSTAGE_COUNTS {
        assert_eq!(
            counts.get(*blueprint),
            Some(expected),
            "entities of {blueprint}"
        );
    }
    let port_blueprints: Vec<(&String, &i64)> = counts
        .iter()
        .filter(|(identifier, _)| {
            !BACKSTAGE_COUNTS
                .iter()
                .any(|(backstage, _)| backstage == identifier)
        })
        .collect();
    assert_eq!(
        port_blueprints.len(),
        15,
        "Port blueprints: {port_blueprints:?}"
    );
    assert!(
        port_blueprints.iter().all(|(_, entities)| **entities == 0),
        "the Port fixtures hold blueprints only: {port_blueprints:?}"
    );
    assert!(counts.contains_key("pagerdutyService"));
    assert!(counts.contains_key("githubPullRequest"));

    let warnings = &report.warnings;
    assert_warning(warnings, "component:petstore: ownedBy points to group:sre");
    assert_warning(warnings, "component:jacs: ownedBy points to group:inpixon");
    assert_warning(
        warnings,
        "component:wokplaceanalytics: ownedBy points to group:inpixon",
    );
    assert_warning(warnings, "system:podcast: ownedBy points to user:team-b");

    let petstore = entity(&Catalog::new(store), "component", "petstore")
        .await
        .expect("petstore is imported");
    let owners: Vec<(&str, bool)> = petstore
        .owners
        .iter()
        .map(|owner| (owner.reference.as_str(), owner.found))
        .collect();
    assert_eq!(
        owners,
        [("group:sre", false)],
        "a dangling owner stays visible"
    );
}

async fn reimport_changes_nothing(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    import(&store, &clock, &[fixture_path("catalog")]).await;

    let again = import(&store, &clock, &[fixture_path("catalog")]).await;

    assert_eq!(again.created, 0);
    assert_eq!(again.updated, 0);
    assert_eq!(again.removed, 0);
    assert_eq!(again.unchanged, 51);
}

/// A Backstage component document named `name`.
fn component_yaml(name: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

/// An entity that moves from one imported path to another stays when the
/// path it moved to is imported first, in the same import.
async fn entity_moved_to_earlier_path_is_kept(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::TempDir::new().unwrap();
    let first = folder.path().join("first.yaml");
    let second = folder.path().join("second.yaml");
    std::fs::write(
        &first,
        format!(
            "{}---\n{}",
            component_yaml("mover"),
            component_yaml("stayer")
        ),
    )
    .unwrap();
    std::fs::write(&second, component_yaml("other")).unwrap();
    import(&store, &clock, &[first.clone(), second.clone()]).await;

    std::fs::write(&first, component_yaml("stayer")).unwrap();
    std::fs::write(
        &second,
        format!(
            "{}---\n{}",
            component_yaml("other"),
            component_yaml("mover")
        ),
    )
    .unwrap();
    let report = import(&store, &clock, &[second, first]).await;

    assert_eq!(report.removed, 0, "{report:?}");
    let catalog = Catalog::new(store);
    assert!(
        entity(&catalog, "component", "mover").await.is_some(),
        "the moved entity was deleted"
    );
    assert!(entity(&catalog, "component", "stayer").await.is_some());
    assert!(entity(&catalog, "component", "other").await.is_some());
}

async fn edited_file_updates_one_entity(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let (_folder, root) = catalog_copy();
    import(&store, &clock, std::slice::from_ref(&root)).await;

    let file = root.join("backstage-examples/components/artist-lookup-component.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace(
        "description: Artist Lookup",
        "description: Finds artists by name for the portal",
    );
    assert_ne!(
        text, edited,
        "the fixture still has the description to edit"
    );
    std::fs::write(&file, edited).unwrap();

    let report = import(&store, &clock, &[root]).await;

    assert_eq!(report.updated, 1);
    assert_eq!(report.created, 0);
    assert_eq!(report.removed, 0);
    assert_eq!(report.unchanged, 50);
    let artist_lookup = entity(&Catalog::new(store), "component", "artist-lookup")
        .await
        .expect("artist-lookup is still imported");
    assert_eq!(
        artist_lookup.description,
        "Finds artists by name for the portal"
    );
}

async fn deleted_files_remove_their_entities(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let (_folder, root) = catalog_copy();
    import(&store, &clock, std::slice::from_ref(&root)).await;

    let components = root.join("backstage-examples/components");
    std::fs::remove_file(components.join("petstore-component.yaml")).unwrap();
    std::fs::remove_file(components.join("searcher-component.yaml")).unwrap();

    let report = import(&store, &clock, &[root]).await;

    assert_eq!(report.removed, 2);
    assert_eq!(report.created, 0);
    assert_eq!(report.updated, 0);
    let catalog = Catalog::new(store);
    assert!(entity(&catalog, "component", "petstore").await.is_none());
    assert!(entity(&catalog, "component", "example").await.is_none());
    assert!(
        entity(&catalog, "component", "artist-lookup")
            .await
            .is_some()
    );
    assert_eq!(blueprint_counts(&catalog).await.get("component"), Some(&12));
}

/// A broken file, where it goes in the catalog folder, and the words the
/// import error must use for what is wrong with it.
struct BrokenFile {
    path: &'static str,
    text: &'static str,
    problem: &'static str,
}

const BROKEN_FILES: &[BrokenFile] = &[
    BrokenFile {
        path: "backstage-examples/components/broken-yaml.yaml",
        text: "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\n  \
               tags: [java, data\nspec:\n  type: service\n",
        problem: "invalid YAML",
    },
    BrokenFile {
        path: "backstage-examples/components/nameless.yaml",
        text: "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  description: \
               A component without a name\nspec:\n  type: service\n",
        problem: "metadata.name is missing",
    },
    BrokenFile {
        path: "port-blueprints/broken.json",
        text: "[{\"identifier\": \"service\", \"schema\": {\"properties\": {}}",
        problem: "invalid JSON",
    },
];

async fn invalid_files_fail_and_keep_catalog(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let catalog = Catalog::new(store.clone());
    let (_folder, root) = catalog_copy();
    import(&store, &clock, std::slice::from_ref(&root)).await;
    let counts_before = blueprint_counts(&catalog).await;

    let petstore = root.join("backstage-examples/components/petstore-component.yaml");
    let petstore_text = std::fs::read_to_string(&petstore).unwrap();

    for broken in BROKEN_FILES {
        // Without the broken file this import would remove petstore.
        std::fs::remove_file(&petstore).unwrap();
        let broken_path = root.join(broken.path);
        std::fs::write(&broken_path, broken.text).unwrap();

        let error = import_paths(&store, &clock, std::slice::from_ref(&root))
            .await
            .expect_err(&format!("importing {} must fail", broken.path));

        let file_name = Path::new(broken.path)
            .file_name()
            .unwrap()
            .to_string_lossy();
        let import_error = error
            .downcast_ref::<ImportError>()
            .unwrap_or_else(|| panic!("expected an ImportError, got {error:#}"));
        assert_eq!(
            import_error.problems.len(),
            1,
            "{:?}",
            import_error.problems
        );
        let problem = &import_error.problems[0];
        assert!(
            problem.contains(&*file_name),
            "{problem:?} names {file_name}"
        );
        assert!(
            problem.contains(broken.problem),
            "{problem:?} says {:?}",
            broken.problem
        );
        assert!(
            error.to_string().contains("nothing was changed"),
            "the error says the catalog was left alone: {error}"
        );

        assert_eq!(
            blueprint_counts(&catalog).await,
            counts_before,
            "after {}",
            broken.path
        );
        assert!(
            entity(&catalog, "component", "petstore").await.is_some(),
            "a failed import of {} removed petstore",
            broken.path
        );

        std::fs::remove_file(&broken_path).unwrap();
        std::fs::write(&petstore, &petstore_text).unwrap();
    }
}

async fn same_named_entities_stay_separate(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    import(&store, &clock, &[backstage_fixtures()]).await;
    let catalog = Catalog::new(store);

    let component = entity(&catalog, "component", "wayback-search")
        .await
        .expect("the wayback-search component");
    let api = entity(&catalog, "api", "wayback-search")
        .await
        .expect("the wayback-search API");
    assert_eq!(component.description, "Search of the wayback machine");
    assert_eq!(api.description, "Search API for the wayback machine");
    let provided: Vec<&str> = component
        .relations
        .iter()
        .filter(|link| link.relation == "providesApi")
        .map(|link| link.target.reference.as_str())
        .collect();
    assert_eq!(provided, ["api:wayback-search"]);

    let default_guest = entity(&catalog, "user", "guest")
        .await
        .expect("the guest user in the default namespace");
    let development_guest = entity(&catalog, "user", "development/guest")
        .await
        .expect("the guest user in the development namespace");
    assert_eq!(default_guest.properties["namespace"], "default");
    assert_eq!(development_guest.properties["namespace"], "development");

    let tools = ToolRegistry::catalog_tools();
    let context = ToolContext {
        catalog,
        scope: Scope::All,
        session: None,
    };
    let call = ToolCall {
        id: "call-1".to_string(),
        name: "get_entity".to_string(),
        arguments: r#"{"entity": "guest"}"#.to_string(),
    };
    let outcome = tools.execute(&context, &call).await;
    assert!(!outcome.is_error, "{}", outcome.content);
    let output: Value = serde_json::from_str(&outcome.content).unwrap();
    assert_eq!(output["ambiguous"], true, "{output}");
    let mut candidates: Vec<&str> = output["candidates"]
        .as_array()
        .expect("a list of candidates")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    candidates.sort_unstable();
    assert_eq!(candidates, ["user:development/guest", "user:guest"]);
}

async fn location_targets_are_followed(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();

    let report = import(
        &store,
        &clock,
        &[backstage_fixtures().join("acme/org.yaml")],
    )
    .await;

    assert_eq!(
        report.files, 8,
        "org.yaml and the 7 group files it points at"
    );
    let catalog = Catalog::new(store);
    let counts = blueprint_counts(&catalog).await;
    assert_eq!(counts.get("group"), Some(&8));
    assert_eq!(counts.get("user"), Some(&17));
    assert_eq!(counts.get("location"), Some(&1));
    assert_eq!(
        counts.get("component"),
        None,
        "no file outside the targets is read"
    );
    for group in [
        "acme-corp",
        "infrastructure",
        "backstage",
        "boxoffice",
        "team-a",
        "team-b",
        "team-c",
        "team-d",
    ] {
        assert!(
            entity(&catalog, "group", group).await.is_some(),
            "group {group}"
        );
    }
}

async fn first_real_import_removes_demo(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    demo::load(&store, &clock)
        .await
        .expect("the demo catalog loads");
    let catalog = Catalog::new(store.clone());
    assert!(demo::is_loaded(&store).await.unwrap());
    assert!(entity(&catalog, "service", "payments").await.is_some());

    let report = import(&store, &clock, &[backstage_fixtures()]).await;

    assert!(report.demo_removed);
    assert!(!demo::is_loaded(&store).await.unwrap());
    assert!(entity(&catalog, "service", "payments").await.is_none());
    let stats = catalog.stats().await.unwrap();
    assert!(stats.iter().all(|line| !line.is_demo), "{stats:?}");
    assert!(
        stats.iter().all(|line| line.identifier != "service"),
        "demo blueprints are gone: {stats:?}"
    );
    assert_eq!(stats.iter().map(|line| line.entities).sum::<i64>(), 51);

    let second = import(&store, &clock, &[backstage_fixtures()]).await;
    assert!(!second.demo_removed);
}

const PORT_API_ENTITIES: &str = r#"{
  "ok": true,
  "entities": [
    {
      "identifier": "agentdesk",
      "title": "agentdesk",
      "blueprint": "githubRepository",
      "team": [],
      "properties": { "language": "Rust", "visibility": "private" },
      "relations": {},
      "createdAt": "2025-01-02T10:00:00.000Z",
      "updatedAt": "2025-01-02T10:00:00.000Z"
    },
    {
      "identifier": "agentdesk-42",
      "title": "Add catalog import tests",
      "blueprint": "githubPullRequest",
      "team": [],
      "properties": { "status": "open", "creator": "lindqvist" },
      "relations": { "repository": "agentdesk" },
      "createdAt": "2025-01-03T10:00:00.000Z",
      "updatedAt": "2025-01-03T10:00:00.000Z"
    }
  ]
}"#;

async fn port_api_shape_resolves_relations(database: TestDatabase) {
    let store = database.store().await;
    let clock: SharedClock = manual_clock();
    let folder = tempfile::tempdir().unwrap();
    let entities_file = folder.path().join("entities.json");
    std::fs::write(&entities_file, PORT_API_ENTITIES).unwrap();

    import(
        &store,
        &clock,
        &[fixture_path("catalog/port-blueprints/github")],
    )
    .await;
    let report = import(&store, &clock, &[entities_file]).await;

    assert_eq!(report.created, 2);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let catalog = Catalog::new(store);
    let pull_request = entity(&catalog, "githubPullRequest", "agentdesk-42")
        .await
        .expect("the pull request is imported");
    assert_eq!(pull_request.title, "Add catalog import tests");
    assert_eq!(pull_request.properties["status"], "open");
    let links: Vec<(&str, &str, bool)> = pull_request
        .relations
        .iter()
        .map(|link| {
            (
                link.relation.as_str(),
                link.target.reference.as_str(),
                link.target.found,
            )
        })
        .collect();
    assert_eq!(links, [("repository", "githubRepository:agentdesk", true)]);

    let repository = entity(&catalog, "githubRepository", "agentdesk")
        .await
        .expect("the repository is imported");
    let incoming: Vec<&str> = repository
        .referenced_by
        .iter()
        .map(|link| link.source.reference.as_str())
        .collect();
    assert_eq!(incoming, ["githubPullRequest:agentdesk-42"]);
}

async fn stats_command_prints_counts(database: TestDatabase) {
    let workdir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database.url())];
    let catalog_path = fixture_path("catalog");
    let catalog_arg = catalog_path.to_str().unwrap();

    let imported = run_agentdesk(workdir.path(), &env, &["catalog", "import", catalog_arg]);
    assert!(imported.status.success(), "{}", describe_output(&imported));
    let imported_text = String::from_utf8_lossy(&imported.stdout);
    assert!(
        imported_text.contains("51 created, 0 updated, 0 unchanged, 0 removed"),
        "{imported_text}"
    );

    let stats = run_agentdesk(workdir.path(), &env, &["catalog", "stats"]);
    assert!(stats.status.success(), "{}", describe_output(&stats));
    let text = String::from_utf8_lossy(&stats.stdout);
    let lines: BTreeMap<&str, i64> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let identifier = words.next()?;
            let count = words.next()?.parse().ok()?;
            Some((identifier, count))
        })
        .collect();
    for (blueprint, expected) in BACKSTAGE_COUNTS {
        assert_eq!(
            lines.get(*blueprint),
            Some(expected),
            "{blueprint} in:\n{text}"
        );
    }
    assert_eq!(lines.get("total"), Some(&51), "{text}");
    assert_eq!(lines.get("githubRepository"), Some(&0), "{text}");

    let json = run_agentdesk(workdir.path(), &env, &["catalog", "stats", "--json"]);
    assert!(json.status.success(), "{}", describe_output(&json));
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("stats --json prints JSON");
    let component = parsed
        .as_array()
        .expect("a list of blueprints")
        .iter()
        .find(|line| line["identifier"] == "component")
        .expect("the component line");
    assert_eq!(component["entities"], 14);
    assert_eq!(component["is_demo"], false);
}
