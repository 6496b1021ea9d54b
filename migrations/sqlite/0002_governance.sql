-- Rate limits and token budgets, answer feedback, and leases for periodic
-- tasks that must run on one replica at a time.

-- One row per counter and fixed time window: requests in a minute, tokens
-- in a UTC day. Incremented with an upsert, so replicas share the counts.
CREATE TABLE usage_counters (
    counter_key TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (counter_key, window_start)
);
CREATE INDEX usage_counters_window ON usage_counters (window_start);

-- One vote per user per answer; a new click replaces the old vote.
CREATE TABLE feedback (
    invocation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    vote INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (invocation_id, user_id)
);

-- A lease is held by one process until it expires or is released.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

ALTER TABLE invocations ADD COLUMN refusal TEXT;
CREATE INDEX invocations_user ON invocations (user_id, started_at);
CREATE INDEX invocations_agent ON invocations (agent, started_at);
