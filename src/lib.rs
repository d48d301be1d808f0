//! drydock: an MCP server that lets AI agents change production databases safely. Agents
//! propose migrations; drydock analyses them, tests them on staging, waits for an engineer's
//! approval, applies them with zero-downtime discipline, validates them and can roll them back.
//! Every safety rule is a precondition drydock enforces, and every agent mistake lands in
//! ERRORS.md so it does not repeat.
//!
//! The map, in the one direction imports run (a module imports only from the rows below it;
//! there is no cycle — checked by listing every `crate::` path per top-level module):
//!
//! | layer | modules | owns |
//! | --- | --- | --- |
//! | adapters | `mcp`, `cli`, `web` (and `demo`, the zero-config pair) | the MCP tools, prompts and resources; the engineers' commands; the team server (MCP over HTTP, the JSON API, the review page) |
//! | engine | `engine` | the lifecycle verbs: plan, dry-run, apply, validate, rollback, decisions, reads |
//! | domain | `analysis`, `checklist`, `desired`, `errorlog`, `export`, `render` | hazards and privilege; the safety checklist; a desired schema's differences from the catalog; ERRORS.md; the repository's migration folder; templates |
//! | adapters to data | `db`, `store` | the databases drydock changes; drydock's own state |
//! | definitions | `plan`, `config` | plans, steps, statuses and run kinds, the typed analysis and run evidence; drydock.toml |
//! | leaves | `sql`, `clock`, `redact`, `lockfile`, `identity`, `error` | quoting, the lexer and expression checks; time; secrets masked; cross-process locks; principals and tokens; the error type |

pub mod analysis;
pub mod checklist;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod desired;
pub mod engine;
pub mod error;
pub mod errorlog;
pub mod export;
pub mod identity;
pub mod lockfile;
pub mod mcp;
pub mod plan;
pub mod redact;
pub mod render;
pub mod sql;
pub mod store;
pub mod web;
