-- Catalog, invocations and Slack dedupe keys.
-- Times are milliseconds since the Unix epoch. JSON documents are stored as
-- text so the same queries run on SQLite and PostgreSQL.

CREATE TABLE blueprints (
    identifier TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    schema_json TEXT NOT NULL,
    relations_json TEXT NOT NULL,
    value_samples_json TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL,
    is_demo INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE entities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    blueprint TEXT NOT NULL,
    identifier TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    properties_json TEXT NOT NULL,
    source TEXT NOT NULL,
    is_demo INTEGER NOT NULL DEFAULT 0,
    content_hash TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (blueprint, identifier)
);
CREATE INDEX entities_name ON entities (name);
CREATE INDEX entities_source ON entities (source);

CREATE TABLE entity_relations (
    source_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    target_blueprint TEXT NOT NULL,
    target_identifier TEXT NOT NULL,
    PRIMARY KEY (source_id, name, target_blueprint, target_identifier)
);
CREATE INDEX entity_relations_target
    ON entity_relations (target_blueprint, target_identifier);

-- One row per scalar property value (array elements each get a row), with
-- the value lower-cased, so property filters use an index; numbers also
-- keep their numeric value for sorting.
CREATE TABLE entity_property_values (
    entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    num_value REAL,
    PRIMARY KEY (name, value, entity_id)
);
CREATE INDEX entity_property_values_entity ON entity_property_values (entity_id);

-- Search index: normalised terms per entity (field: 0 identifier, 1 title,
-- 2 tags, 3 description, 4 blueprint), the vocabulary of all terms, and the
-- trigrams of each vocabulary term, keyed by term length, for typo-tolerant
-- lookup.
CREATE TABLE search_terms (
    term TEXT NOT NULL,
    entity_id INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    field INTEGER NOT NULL,
    PRIMARY KEY (term, entity_id, field)
);
CREATE INDEX search_terms_entity ON search_terms (entity_id);

CREATE TABLE search_vocab (
    term TEXT PRIMARY KEY
);

CREATE TABLE search_grams (
    gram TEXT NOT NULL,
    term_length INTEGER NOT NULL,
    term TEXT NOT NULL,
    PRIMARY KEY (gram, term_length, term)
);

CREATE TABLE invocations (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    agent TEXT NOT NULL,
    team_id TEXT,
    channel_id TEXT,
    thread_ts TEXT,
    message_ts TEXT,
    user_id TEXT,
    prompt TEXT NOT NULL,
    answer TEXT,
    status TEXT NOT NULL,
    error TEXT,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    tool_calls_json TEXT NOT NULL DEFAULT '[]',
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX invocations_thread ON invocations (channel_id, thread_ts, started_at);
CREATE INDEX invocations_status ON invocations (status, started_at);
CREATE INDEX invocations_started ON invocations (started_at);

CREATE TABLE slack_dedupe (
    dedupe_key TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE INDEX slack_dedupe_created ON slack_dedupe (created_at);
