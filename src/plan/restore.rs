//! What a drop template's `down` puts back in batches (`Restore`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Part, Result};

/// The values a `down` puts back from a table drydock set aside (a dropped column's, in the
/// `drydock` schema), in short batches instead of one UPDATE under the `down`'s lock. A rollback
/// runs `prepare` in a transaction of its own (the columns made to exist again, instantly), then
/// the batches, each taking its rows out of the aside table as it puts them back, then the
/// `down`, which repeats `prepare` idempotently and sweeps what is left (everything, where
/// nothing ran before it: the dry-run's rolled-back pass, a composite key). A rollback stopped
/// between batches resumes with what the aside table still holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Restore {
    /// The table the values go back into.
    pub table: String,
    /// Its key (one column), in both tables.
    pub key: String,
    /// The columns put back, in both tables.
    pub columns: Vec<String>,
    /// The aside table (`drydock.<name>`).
    pub from: String,
    /// SQL that makes the columns exist again (`ALTER TABLE … ADD COLUMN IF NOT EXISTS …`).
    pub prepare: String,
}

impl Restore {
    /// Refuses a restore that names anything but plain identifiers, or an aside table outside
    /// the `drydock` schema.
    pub(super) fn validate(&self, step: &str) -> Result<()> {
        let bad =
            |what: String| Error::invalid(Part::Step, format!("step `{step}` restore: {what}"));
        let names = self
            .table
            .split('.')
            .chain([self.key.as_str()])
            .chain(self.columns.iter().map(String::as_str));
        for n in names {
            crate::sql::validate_ident(n).map_err(|e| bad(e.to_string()))?;
        }
        match self.from.split_once('.') {
            Some(("drydock", name)) => {
                crate::sql::validate_ident(name).map_err(|e| bad(e.to_string()))?
            }
            _ => {
                return Err(bad(format!(
                    "`{}` is not a table of the `drydock` schema",
                    self.from
                )));
            }
        }
        if self.columns.is_empty() || self.prepare.trim().is_empty() {
            return Err(bad("names no column or no `prepare`".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore() -> Restore {
        Restore {
            table: "accounts".into(),
            key: "id".into(),
            columns: vec!["nickname".into()],
            from: "drydock.accounts_nickname_dd_dropped".into(),
            prepare: "ALTER TABLE accounts ADD COLUMN IF NOT EXISTS nickname text".into(),
        }
    }

    #[test]
    fn a_restore_names_plain_identifiers_and_an_aside_table_of_drydock() {
        assert!(restore().validate("drop").is_ok());
        for bad in [
            Restore {
                table: "accounts; DROP TABLE x".into(),
                ..restore()
            },
            Restore {
                columns: vec!["a\"b".into()],
                ..restore()
            },
            Restore {
                from: "public.accounts".into(),
                ..restore()
            },
            Restore {
                from: "accounts".into(),
                ..restore()
            },
            Restore {
                columns: vec![],
                ..restore()
            },
            Restore {
                prepare: " ".into(),
                ..restore()
            },
        ] {
            let e = bad.validate("drop").expect_err("refused");
            assert!(e.to_string().contains("step `drop` restore"), "{e}");
        }
    }
}
