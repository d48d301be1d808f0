//! drydock: an MCP server that lets AI agents change production databases safely. Agents
//! propose migrations; drydock analyses them, tests them on staging, waits for an engineer's
//! approval, applies them with zero-downtime discipline, validates them and can roll them back.
//! Every safety rule is a precondition drydock enforces, and every agent mistake lands in
//! ERRORS.md so it does not repeat.
//!
//! Data flows one way: `mcp`/`cli` → domain (`plan`, `checklist`, `engine`, `analysis`,
//! `render`) → `target`/`store`.

pub mod analysis;
pub mod checklist;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod errorlog;
pub mod mcp;
pub mod plan;
pub mod render;
pub mod store;
pub mod target;
