//! Catalog import: Backstage YAML and Port JSON files into the database.
//!
//! An import reads every path it is given (a file, or a folder walked for
//! `.yaml`, `.yml` and `.json` files), follows the relative file targets of
//! Backstage `Location` entities, and then writes everything in one
//! transaction. Each path given is a *source*: importing the same path again
//! updates entities that changed, leaves unchanged ones alone, and removes
//! entities that came from that path before but are gone now.
//!
//! Nothing is written when any file is invalid: the error lists every
//! problem with its file and position, so a broken file never deletes the
//! entities it used to hold. References that point at no entity are kept
//! (they show as dangling) and reported as warnings.
//!
//! The first import of real data removes the bundled demo catalog.

mod backstage;
mod port;
mod storable;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use sqlx::{AnyConnection, Row};
use tracing::{info, instrument, warn};

use super::index::{self, PendingEntity};
use super::{BlueprintDef, EntityDoc, EntityRef};
use crate::clock::SharedClock;
use crate::store::{Dialect, Store};

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportReport {
    pub files: usize,
    pub blueprints: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Whether this import replaced the bundled demo catalog.
    pub demo_removed: bool,
    /// Problems that did not stop the import, such as references to
    /// entities that are not in the catalog.
    pub warnings: Vec<String>,
}

/// Every problem that stopped an import; nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ImportError {
    pub problems: Vec<String>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the catalog was not imported: fix these {} problem(s) and import again \
             (nothing was changed):",
            self.problems.len()
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// Entities and blueprints read from one source.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub blueprints: Vec<BlueprintDef>,
    pub entities: Vec<EntityDoc>,
    pub warnings: Vec<String>,
}

/// Where parsed data goes: its source key and whether it is the demo.
#[derive(Debug, Clone)]
pub(crate) struct SourceKey {
    pub key: String,
    pub is_demo: bool,
}

/// Entities written or removed by one import from which the database's
/// query planner statistics are refreshed afterwards.
const STATISTICS_AFTER: usize = 1_000;

/// Imports catalog files and folders.
#[instrument(skip_all, fields(paths = paths.len()))]
pub async fn import_paths(
    store: &Store,
    clock: &SharedClock,
    paths: &[PathBuf],
) -> Result<ImportReport> {
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    let mut files = 0;

    for path in paths {
        match read_source(path) {
            Ok((key, parsed, file_count)) => {
                files += file_count;
                sources.push((
                    SourceKey {
                        key,
                        is_demo: false,
                    },
                    parsed,
                ));
            }
            Err(source_problems) => problems.extend(source_problems),
        }
    }
    if !problems.is_empty() {
        return Err(ImportError { problems }.into());
    }

    let mut report = apply(store, clock, sources).await?;
    report.files = files;
    if report.created + report.updated + report.removed >= STATISTICS_AFTER {
        // Not refreshing only costs speed, so a failure is logged, not
        // returned: the import itself is committed.
        if let Err(error) = store.refresh_catalog_statistics().await {
            warn!(error = %format!("{error:#}"), "could not refresh the query planner's statistics after the import");
        }
    }
    info!(
        files = report.files,
        created = report.created,
        updated = report.updated,
        unchanged = report.unchanged,
        removed = report.removed,
        warnings = report.warnings.len(),
        "catalog imported"
    );
    Ok(report)
}

/// Reads one path given to an import into its source key and contents.
fn read_source(path: &Path) -> Result<(String, Parsed, usize), Vec<String>> {
    let root = path.canonicalize().map_err(|error| {
        vec![format!(
            "{}: cannot read this path ({error}); check that it exists",
            path.display()
        )]
    })?;
    // Files read, whether Location targets or found by walking a folder,
    // must stay inside the folder being imported (or the folder of the file
    // being imported), so importing someone else's repository cannot read
    // files elsewhere on the machine.
    let boundary = if root.is_dir() {
        root.clone()
    } else {
        root.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.clone())
    };

    let mut queue: Vec<(PathBuf, Strictness)> = if root.is_dir() {
        let mut visited = HashSet::new();
        catalog_files_in(&root, &root, &mut visited)
            .map_err(|error| vec![format!("{}: {error:#}", root.display())])?
            .into_iter()
            .map(|file| (file, Strictness::Discovered))
            .collect()
    } else {
        vec![(root.clone(), Strictness::Named)]
    };
    queue.reverse();

    let mut parsed = Parsed::default();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut read = 0;

    while let Some((found, strictness)) = queue.pop() {
        let file = found.canonicalize().unwrap_or_else(|_| found.clone());
        if !seen.insert(file.clone()) {
            continue;
        }
        // A symbolic link found while walking the folder may lead outside
        // it, where Location targets may not go either.
        if !file.starts_with(&boundary) {
            parsed.warnings.push(format!(
                "{}: skipped: it leads to {}, outside {}; only files inside the imported folder \
                 are read",
                found.display(),
                file.display(),
                boundary.display()
            ));
            continue;
        }
        match read_file(&file, strictness, &boundary, &mut parsed) {
            Ok(Some(targets)) => {
                read += 1;
                for target in targets {
                    queue.push((target, Strictness::Named));
                }
            }
            Ok(None) => {}
            Err(file_problems) => problems.extend(file_problems),
        }
    }

    if read == 0 && problems.is_empty() {
        problems.push(format!(
            "{}: no catalog files found (Backstage YAML or Port JSON); nothing was changed, so \
             check the path",
            root.display()
        ));
    }
    if problems.is_empty() {
        Ok((root.display().to_string(), parsed, read))
    } else {
        Err(problems)
    }
}

/// How a file reached the import, which decides what a non-catalog file
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strictness {
    /// Named on the command line or by a Location: it must be catalog data.
    Named,
    /// Found while walking a folder: a file that is plainly something else
    /// (an OpenAPI document, docker-compose.yml, package.json) is skipped
    /// with a warning.
    Discovered,
}

/// Folders never walked: dependencies and build output, not catalog data.
const SKIPPED_FOLDERS: &[&str] = &["node_modules", "target", "vendor"];

/// Lists catalog files under a folder, sorted, skipping hidden entries and
/// any folder already walked (symbolic links can form loops). A folder that
/// a symbolic link puts outside `boundary` is listed as an entry but not
/// walked, so the reader reports it as outside.
fn catalog_files_in(
    folder: &Path,
    boundary: &Path,
    visited: &mut HashSet<PathBuf>,
) -> Result<Vec<PathBuf>> {
    let canonical = folder
        .canonicalize()
        .with_context(|| format!("cannot read folder {}", folder.display()))?;
    if !visited.insert(canonical) {
        return Ok(Vec::new());
    }

    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(folder)
        .with_context(|| format!("cannot list folder {}", folder.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());

    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if SKIPPED_FOLDERS.contains(&name.as_str()) {
                continue;
            }
            let is_inside = path
                .canonicalize()
                .is_ok_and(|canonical| canonical.starts_with(boundary));
            if is_inside {
                files.extend(catalog_files_in(&path, boundary, visited)?);
            } else {
                files.push(path);
            }
        } else if is_catalog_file(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .and_then(|extension| extension.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn is_catalog_file(path: &Path) -> bool {
    matches!(extension_of(path).as_str(), "yaml" | "yml" | "json")
}

/// Parses one file into `parsed`; returns the Location targets to read
/// next, or `None` when a discovered file is not catalog data.
fn read_file(
    file: &Path,
    strictness: Strictness,
    boundary: &Path,
    parsed: &mut Parsed,
) -> Result<Option<Vec<PathBuf>>, Vec<String>> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|error| vec![format!("{shown}: cannot read the file ({error})")])?;

    let entities_before = parsed.entities.len();
    let blueprints_before = parsed.blueprints.len();
    let targets = if extension_of(file) == "json" {
        if strictness == Strictness::Discovered && !port::looks_like_port_data(&text) {
            parsed
                .warnings
                .push(format!("{shown}: skipped: not Port blueprints or entities"));
            return Ok(None);
        }
        port::parse_file(&text, &shown, parsed)?;
        Vec::new()
    } else {
        if strictness == Strictness::Discovered && !backstage::looks_like_descriptor(&text) {
            parsed.warnings.push(format!(
                "{shown}: skipped: not a Backstage descriptor (no apiVersion and kind)"
            ));
            return Ok(None);
        }
        let base = file.parent().unwrap_or_else(|| Path::new("."));
        backstage::parse_file(&text, &shown, base, boundary, parsed)?
    };

    let problems = storable::storage_problems(
        &shown,
        &parsed.entities[entities_before..],
        &parsed.blueprints[blueprints_before..],
    );
    if problems.is_empty() {
        Ok(Some(targets))
    } else {
        Err(problems)
    }
}

/// Parses Port JSON text (used for the embedded demo catalog).
pub(crate) fn parse_port_text(
    text: &str,
    name: &str,
    parsed: &mut Parsed,
) -> Result<(), Vec<String>> {
    port::parse_file(text, name, parsed)
}

/// Writes parsed sources in one transaction.
pub(crate) async fn apply(
    store: &Store,
    clock: &SharedClock,
    sources: Vec<(SourceKey, Parsed)>,
) -> Result<ImportReport> {
    let now = clock.now_millis();
    let mut report = ImportReport::default();
    let mut transaction = begin_write(store).await?;
    let connection: &mut AnyConnection = &mut transaction;

    let is_demo_import = sources.iter().all(|(source, _)| source.is_demo);
    if !is_demo_import {
        report.demo_removed = remove_demo(connection).await?;
    }

    let mut stored_blueprints = load_blueprints(connection).await?;
    let existing = load_entity_keys(connection).await?;
    let mut known_terms = index::load_vocabulary(connection).await?;
    let mut touched_blueprints = BTreeSet::new();
    let mut any_removed_or_updated = false;

    // Every blueprint first, so entities in any source can resolve against
    // blueprints from any other.
    let mut written_blueprints = HashSet::new();
    for (source, parsed) in &sources {
        for blueprint in &parsed.blueprints {
            let merged = merge_blueprint(stored_blueprints.get(&blueprint.identifier), blueprint);
            write_blueprint(connection, &merged, source, now).await?;
            written_blueprints.insert(merged.identifier.clone());
            report.blueprints = written_blueprints.len();
            stored_blueprints.insert(merged.identifier.clone(), merged);
        }
    }

    let mut sources = sources;
    for (_, parsed) in &mut sources {
        let warnings = resolve_relation_targets(&mut parsed.entities, &stored_blueprints);
        parsed.warnings.extend(warnings);
    }

    let mut all_refs: HashSet<EntityRef> = existing.keys().cloned().collect();
    for (_, parsed) in &sources {
        for entity in &parsed.entities {
            all_refs.insert(EntityRef::new(&entity.blueprint, &entity.identifier));
        }
    }

    // An entity defined under two paths of one import keeps its first
    // definition, so importing the same paths again changes nothing.
    let mut claimed: HashMap<EntityRef, String> = HashMap::new();
    for (source, parsed) in sources {
        report.warnings.extend(parsed.warnings);
        let mut seen = HashSet::new();
        let mut pending = Vec::new();

        for doc in parsed.entities {
            let reference = EntityRef::new(&doc.blueprint, &doc.identifier);
            if let Some(first) = claimed.get(&reference)
                && *first != source.key
            {
                report.warnings.push(format!(
                    "{reference} is defined in both {first} and {}; the definition in {first} is \
                     kept",
                    source.key
                ));
                continue;
            }
            if !seen.insert(reference.clone()) {
                report.warnings.push(format!(
                    "{reference} is defined more than once in {}; the first definition is kept",
                    source.key
                ));
                continue;
            }
            claimed.insert(reference.clone(), source.key.clone());
            if !stored_blueprints.contains_key(&doc.blueprint) {
                let blueprint = implicit_blueprint(&doc.blueprint);
                write_blueprint(connection, &blueprint, &source, now).await?;
                stored_blueprints.insert(blueprint.identifier.clone(), blueprint);
                report.warnings.push(format!(
                    "{reference}: blueprint {:?} was not defined, so an empty one was created; \
                     import its blueprint file to describe its properties",
                    doc.blueprint
                ));
            }
            report
                .warnings
                .extend(dangling_warnings(&reference, &doc, &all_refs));

            let content_hash = index::content_hash(&doc, &source.key);
            match existing.get(&reference) {
                Some(stored) if stored.content_hash == content_hash => report.unchanged += 1,
                Some(_) => {
                    report.updated += 1;
                    any_removed_or_updated = true;
                }
                None => report.created += 1,
            }
            if existing
                .get(&reference)
                .is_none_or(|stored| stored.content_hash != content_hash)
            {
                touched_blueprints.insert(doc.blueprint.clone());
                pending.push(PendingEntity {
                    doc,
                    source: source.key.clone(),
                    is_demo: source.is_demo,
                    content_hash,
                    is_new: !existing.contains_key(&reference),
                });
            }
        }

        let titles: HashMap<String, String> = stored_blueprints
            .iter()
            .map(|(identifier, blueprint)| (identifier.clone(), blueprint.title.clone()))
            .collect();
        for chunk in pending.chunks(2_000) {
            index::write_entities(connection, chunk, &titles, &mut known_terms, now).await?;
        }

        let gone: Vec<(i64, String)> = existing
            .iter()
            // An entity that another path of this import now defines has
            // moved there, so its row belongs to that path.
            .filter(|(reference, stored)| {
                stored.source == source.key
                    && !seen.contains(*reference)
                    && !claimed.contains_key(*reference)
            })
            .map(|(reference, stored)| (stored.id, reference.blueprint.clone()))
            .collect();
        if !gone.is_empty() {
            let ids: Vec<i64> = gone.iter().map(|(id, _)| *id).collect();
            index::delete_entities(connection, &ids).await?;
            touched_blueprints.extend(gone.into_iter().map(|(_, blueprint)| blueprint));
            report.removed += ids.len();
            any_removed_or_updated = true;
        }
    }

    if any_removed_or_updated || report.demo_removed {
        index::prune_vocabulary(connection).await?;
    }
    index::refresh_value_samples(connection, &touched_blueprints).await?;

    transaction
        .commit()
        .await
        .context("could not commit the catalog import")?;
    Ok(report)
}

/// Key of the PostgreSQL advisory lock that imports take.
const IMPORT_LOCK: i64 = 0x6167_656e_7464_6573;

/// Starts a write transaction that no other import runs beside: on SQLite
/// it takes the write lock at once (`BEGIN IMMEDIATE`), so two importers
/// queue on the busy timeout instead of failing when one upgrades its read
/// lock; on PostgreSQL it takes an advisory lock until the transaction
/// ends. An import reads the stored entities once at its start and relies
/// on them not changing under it.
async fn begin_write(store: &Store) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let mut transaction = match store.dialect() {
        Dialect::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres => {
            // Connections plan every statement for its values (see the
            // store); the import's statements of thousands of rows each
            // would only pay for planning again on every batch.
            store
                .pool()
                .begin_with("BEGIN; SET LOCAL plan_cache_mode = auto")
                .await
        }
    }
    .context("could not start a database transaction")?;
    if store.dialect() == Dialect::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(IMPORT_LOCK)
            .execute(&mut *transaction)
            .await
            .context("could not wait for another catalog import to finish")?;
    }
    Ok(transaction)
}

/// Deletes the demo catalog; returns whether there was one.
async fn remove_demo(connection: &mut AnyConnection) -> Result<bool> {
    let ids: Vec<i64> = sqlx::query("SELECT id FROM entities WHERE is_demo = 1")
        .fetch_all(&mut *connection)
        .await
        .context("could not look for the demo catalog")?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    let blueprints = sqlx::query("DELETE FROM blueprints WHERE is_demo = 1")
        .execute(&mut *connection)
        .await
        .context("could not remove the demo blueprints")?
        .rows_affected();
    index::delete_entities(connection, &ids).await?;
    Ok(!ids.is_empty() || blueprints > 0)
}

#[derive(Debug)]
struct StoredEntity {
    id: i64,
    source: String,
    content_hash: String,
}

async fn load_entity_keys(
    connection: &mut AnyConnection,
) -> Result<HashMap<EntityRef, StoredEntity>> {
    let rows = sqlx::query("SELECT id, blueprint, identifier, source, content_hash FROM entities")
        .fetch_all(&mut *connection)
        .await
        .context("could not read the stored entities")?;
    let mut entities = HashMap::with_capacity(rows.len());
    for row in rows {
        entities.insert(
            EntityRef::new(
                row.try_get::<String, _>("blueprint")?,
                row.try_get::<String, _>("identifier")?,
            ),
            StoredEntity {
                id: row.try_get("id")?,
                source: row.try_get("source")?,
                content_hash: row.try_get("content_hash")?,
            },
        );
    }
    Ok(entities)
}

/// Loads every stored blueprint definition.
pub(crate) async fn load_blueprints(
    connection: &mut AnyConnection,
) -> Result<BTreeMap<String, BlueprintDef>> {
    let rows = sqlx::query(
        "SELECT identifier, title, description, schema_json, relations_json FROM blueprints",
    )
    .fetch_all(&mut *connection)
    .await
    .context("could not read the stored blueprints")?;

    let mut blueprints = BTreeMap::new();
    for row in rows {
        let identifier: String = row.try_get("identifier")?;
        let schema: String = row.try_get("schema_json")?;
        let relations: String = row.try_get("relations_json")?;
        blueprints.insert(
            identifier.clone(),
            BlueprintDef {
                identifier,
                title: row.try_get("title")?,
                description: row.try_get("description")?,
                schema: serde_json::from_str(&schema).context("stored schema is not JSON")?,
                relations: serde_json::from_str(&relations)
                    .context("stored relations are not JSON")?,
            },
        );
    }
    Ok(blueprints)
}

async fn write_blueprint(
    connection: &mut AnyConnection,
    blueprint: &BlueprintDef,
    source: &SourceKey,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO blueprints (identifier, title, description, schema_json, relations_json, \
         source, is_demo, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (identifier) DO UPDATE SET title = excluded.title, \
         description = excluded.description, schema_json = excluded.schema_json, \
         relations_json = excluded.relations_json, source = excluded.source, \
         is_demo = excluded.is_demo, updated_at = excluded.updated_at",
    )
    .bind(blueprint.identifier.clone())
    .bind(blueprint.title.clone())
    .bind(blueprint.description.clone())
    .bind(blueprint.schema.to_string())
    .bind(serde_json::to_string(&blueprint.relations)?)
    .bind(source.key.clone())
    .bind(i64::from(source.is_demo))
    .bind(now)
    .execute(&mut *connection)
    .await
    .with_context(|| format!("could not write blueprint {}", blueprint.identifier))?;
    Ok(())
}

/// Combines a stored blueprint with a newly read one. Blueprints read from
/// Port files replace the stored one; blueprints inferred from Backstage
/// entities add their properties and relations to what is stored, because
/// each Backstage file only shows part of a kind.
fn merge_blueprint(stored: Option<&BlueprintDef>, new: &BlueprintDef) -> BlueprintDef {
    let Some(stored) = stored else {
        return new.clone();
    };
    if !backstage::is_inferred(new) {
        return new.clone();
    }

    let mut merged = new.clone();
    if let (Some(stored_properties), Some(properties)) = (
        stored.schema.get("properties").and_then(Value::as_object),
        merged
            .schema
            .get_mut("properties")
            .and_then(Value::as_object_mut),
    ) {
        for (name, schema) in stored_properties {
            properties
                .entry(name.clone())
                .or_insert_with(|| schema.clone());
        }
    }
    for (name, relation) in &stored.relations {
        merged
            .relations
            .entry(name.clone())
            .or_insert_with(|| relation.clone());
    }
    merged
}

/// Fills in the target blueprint of relations read without one (Port
/// relation values are bare identifiers) from the declaring blueprint.
fn resolve_relation_targets(
    entities: &mut [EntityDoc],
    blueprints: &BTreeMap<String, BlueprintDef>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for entity in entities {
        let declared = blueprints.get(&entity.blueprint);
        for (name, targets) in &mut entity.relations {
            let unresolved = targets.iter().any(|target| target.blueprint.is_empty());
            if !unresolved {
                continue;
            }
            let target_blueprint = declared
                .and_then(|blueprint| blueprint.relations.get(name))
                .map(|relation| relation.target.clone())
                .filter(|target| !target.is_empty())
                .or_else(|| blueprints.contains_key(name.as_str()).then(|| name.clone()));
            match target_blueprint {
                Some(target_blueprint) => {
                    for target in targets
                        .iter_mut()
                        .filter(|target| target.blueprint.is_empty())
                    {
                        target.blueprint = target_blueprint.clone();
                    }
                }
                None => warnings.push(format!(
                    "{}:{}: relation {name} is not declared by blueprint {:?}, so its targets \
                     cannot be resolved; import the blueprint file that declares it",
                    entity.blueprint, entity.identifier, entity.blueprint
                )),
            }
        }
    }
    warnings
}

fn implicit_blueprint(identifier: &str) -> BlueprintDef {
    BlueprintDef {
        identifier: identifier.to_string(),
        title: identifier.to_string(),
        description: String::new(),
        schema: serde_json::json!({ "properties": {}, "required": [] }),
        relations: BTreeMap::new(),
    }
}

fn dangling_warnings(
    reference: &EntityRef,
    doc: &EntityDoc,
    all_refs: &HashSet<EntityRef>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (relation, targets) in &doc.relations {
        for target in targets {
            if !all_refs.contains(target) {
                warnings.push(format!(
                    "{reference}: {relation} points to {target}, which is not in the catalog; \
                     the reference is kept and shown as not found"
                ));
            }
        }
    }
    warnings
}
