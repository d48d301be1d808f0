//! A mistake as drydock records it: in ERRORS.md (`errorlog`) and, with a shared state store, in
//! the store too — a record both read, so neither imports the other.

/// A mistake to record.
#[derive(Debug, Clone, Default)]
pub struct Mistake {
    pub agent: String,
    pub tool: String,
    pub plan: Option<String>,
    pub target: Option<String>,
    pub code: String,
    pub what: String,
    pub lesson: String,
    pub tables: Vec<String>,
}
