//! Self-service actions: operations such as "deploy checkout to staging"
//! that an agent proposes with its inputs filled in, a person approves, and
//! the product then runs.
//!
//! An action is defined in the agents file with a name, what it runs, and
//! an input schema. [`inputs`] contains that schema: how it is read from
//! YAML and checked, and how it is described to the model as a tool's JSON
//! Schema. It also validates a proposal's inputs before anyone is asked to
//! approve, resolving entity references against the catalog and filling
//! defaults.

pub mod inputs;
