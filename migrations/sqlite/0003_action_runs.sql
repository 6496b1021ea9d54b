-- Runs of self-service actions, from proposal to result. A run moves from
-- waiting_for_approval to in_progress or rejected (or expired) in one
-- conditional update, so it executes at most once.
CREATE TABLE action_runs (
    id TEXT PRIMARY KEY,
    action_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    invocation_id TEXT,
    inputs_json TEXT NOT NULL,
    target_ref TEXT,
    target_title TEXT,
    requester TEXT NOT NULL,
    team_id TEXT,
    decider TEXT,
    status TEXT NOT NULL,
    summary TEXT,
    link TEXT,
    http_status INTEGER,
    result_json TEXT,
    channel_id TEXT,
    thread_ts TEXT,
    message_ts TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    decided_at INTEGER,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX action_runs_status ON action_runs (status, expires_at);
CREATE INDEX action_runs_created ON action_runs (created_at);
CREATE INDEX action_runs_invocation ON action_runs (invocation_id);
