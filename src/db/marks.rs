//! What tells, without reading a table's rows, that a dry-run left its data as it found it:
//! every leaf's storage (a rewrite, a `TRUNCATE` gives it new storage), its columns by number
//! (a column dropped and added again is a new, empty column under the old name) and, inside one
//! transaction, how many rows the transaction inserted, updated or deleted there (PostgreSQL's
//! own per-transaction counters, which count every row written, by a trigger, a cascade or a
//! rolled-back savepoint too, and never go down). A table whose marks are the same after `down`
//! as before `up` holds the same rows; only the others are compared row by row — the cost of the
//! comparison follows what the plan wrote, not the size of the tables it names.

use std::collections::BTreeMap;

/// One table's marks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMarks {
    /// The table and each of its partitions: (oid, relfilenode).
    pub storage: Vec<(u32, i64)>,
    /// `name:number:type:typmod` of each column, in order.
    pub columns: Vec<String>,
    /// Rows inserted, updated and deleted by the current transaction, summed over its leaves;
    /// `None` where the marks span transactions (they count one).
    pub written: Option<i64>,
}

/// The marks of the tables a plan names, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataMarks(pub BTreeMap<String, TableMarks>);

impl DataMarks {
    /// The tables whose rows may differ between `self` (before) and `after`: storage or columns
    /// changed, rows written, or the table gone or come. Without counters (marks across
    /// transactions), rows written are not seen: the caller must not rely on these alone then.
    pub fn changed(&self, after: &DataMarks) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|(table, before)| match after.0.get(*table) {
                None => true,
                Some(now) => {
                    now.storage != before.storage
                        || now.columns != before.columns
                        || now.written != before.written
                }
            })
            .map(|(table, _)| table.clone())
            .collect();
        out.extend(after.0.keys().filter(|t| !self.0.contains_key(*t)).cloned());
        out
    }

    /// Whether the marks count rows written (they were taken inside one transaction).
    pub fn count_rows(&self) -> bool {
        self.0.values().all(|m| m.written.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(storage: i64, columns: &[&str], written: Option<i64>) -> TableMarks {
        TableMarks {
            storage: vec![(16384, storage)],
            columns: columns.iter().map(|c| c.to_string()).collect(),
            written,
        }
    }

    #[test]
    fn a_table_is_changed_by_new_storage_a_column_added_again_or_a_row_written() {
        let before = DataMarks(BTreeMap::from([
            ("a".to_string(), marks(1, &["id:1:20:-1"], Some(0))),
            (
                "b".to_string(),
                marks(2, &["id:1:20:-1", "v:2:25:-1"], Some(0)),
            ),
            ("c".to_string(), marks(3, &["id:1:20:-1"], Some(0))),
            ("d".to_string(), marks(4, &["id:1:20:-1"], Some(0))),
        ]));
        let after = DataMarks(BTreeMap::from([
            ("a".to_string(), marks(1, &["id:1:20:-1"], Some(0))),
            (
                "b".to_string(),
                marks(2, &["id:1:20:-1", "v:3:25:-1"], Some(0)),
            ),
            ("c".to_string(), marks(9, &["id:1:20:-1"], Some(0))),
            ("d".to_string(), marks(4, &["id:1:20:-1"], Some(2))),
        ]));
        assert_eq!(before.changed(&after), ["b", "c", "d"]);
        assert!(before.count_rows());
    }
}
