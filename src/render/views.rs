//! A view's definition made to read a table's column under its new name, each of the view's
//! own columns keeping the name it had (`cu.email` becomes `cu.email_address AS email`): what the
//! `rename-column` template creates again when the application switches to the new name.
//!
//! PostgreSQL's parser says where each column reference is (its tree, read as JSON, gives each
//! reference's fields and byte location, and each query's tables and aliases); the text is edited
//! at those places only, then parsed again to verify that no reference to the old column is left.

use serde_json::Value;

use crate::sql::quote_ident;

/// `create` (`CREATE VIEW … AS …`) reading `table.to` wherever it read `table.from`.
pub fn reading(
    create: &str,
    table: &str,
    from: &str,
    to: &str,
) -> std::result::Result<String, String> {
    let edits = references(create, table, from)?;
    let mut out = create.to_string();
    // From the end, so that each place is still where the parser said.
    let mut edits = edits;
    edits.sort_by_key(|e| std::cmp::Reverse(e.at));
    for e in edits {
        let (start, end) = last_name(&out, e.at).ok_or_else(|| {
            format!(
                "cannot read the column reference at byte {} of {create:?}",
                e.at
            )
        })?;
        let alias = if e.keep_name {
            format!(" AS {}", quote_ident(from))
        } else {
            String::new()
        };
        out.replace_range(start..end, &format!("{}{alias}", quote_ident(to)));
    }
    if !references(&out, table, from)?.is_empty() {
        return Err(format!(
            "a view still reads {table}.{from} after the rename ({out:?}); recreate it by hand in a `migration` plan"
        ));
    }
    Ok(out)
}

/// One place to edit: a column reference to `table.from` starting at byte `at`; `keep_name`: it
/// is a column of the view itself, which must keep its name.
struct Edit {
    at: usize,
    keep_name: bool,
}

/// Every reference to `table.from` in `sql`'s queries.
fn references(sql: &str, table: &str, from: &str) -> std::result::Result<Vec<Edit>, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| format!("{sql:?} does not parse: {e}"))?;
    let tree = serde_json::to_value(&parsed.protobuf).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let walk = Walk { table, from };
    walk.value(&tree, &[], true, &mut out);
    Ok(out)
}

struct Walk<'a> {
    table: &'a str,
    from: &'a str,
}

/// The names under which a query's own `FROM` reads the table, and whether it reads nothing
/// else (then PostgreSQL prints its columns unqualified).
struct Scope {
    names: Vec<String>,
    alone: bool,
}

impl Walk<'_> {
    fn value(&self, v: &Value, outer: &[String], top: bool, out: &mut Vec<Edit>) {
        match v {
            Value::Object(map) => {
                if let Some(select) = map.get("SelectStmt") {
                    self.select(select, outer, top, out);
                    return;
                }
                if let Some(c) = map.get("ColumnRef") {
                    if let Some(at) = self.matches(c, outer) {
                        out.push(Edit {
                            at,
                            keep_name: false,
                        });
                    }
                    return;
                }
                // Until the first query, `top` passes through the statement's wrappers.
                for child in map.values() {
                    self.value(child, outer, top, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.value(i, outer, top, out)),
            _ => {}
        }
    }

    /// A query: its `FROM` decides which names mean the table; its target list (at the top,
    /// the view's own columns) keeps each column's name.
    fn select(&self, s: &Value, outer: &[String], top: bool, out: &mut Vec<Edit>) {
        // A set operation's arms: the left one names the view's columns.
        let arm = |k: &str| s.get(k).filter(|v| !v.is_null());
        if let (Some(l), Some(r)) = (arm("larg"), arm("rarg")) {
            self.select(l, outer, top, out);
            self.select(r, outer, false, out);
            return;
        }
        let scope = self.scope(s.get("from_clause"));
        // A correlated subquery sees the outer query's names, but not its unqualified ones.
        let mut names: Vec<String> = scope.names.clone();
        names.extend(outer.iter().filter(|n| !n.is_empty()).cloned());
        if scope.alone {
            // Unqualified references mean the table.
            names.push(String::new());
        }
        for (key, child) in s.as_object().into_iter().flatten() {
            if key == "target_list" {
                for t in child.as_array().into_iter().flatten() {
                    self.target(t, &names, top, out);
                }
            } else {
                self.value(child, &names, false, out);
            }
        }
    }

    /// One entry of a target list: a bare reference to the column keeps its output name.
    fn target(&self, t: &Value, names: &[String], top: bool, out: &mut Vec<Edit>) {
        let Some(r) = t.get("node").and_then(|n| n.get("ResTarget")) else {
            return self.value(t, names, false, out);
        };
        let unnamed = r
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty();
        if let Some(c) = r
            .get("val")
            .and_then(|v| v.get("node"))
            .and_then(|v| v.get("ColumnRef"))
            && let Some(at) = self.matches(c, names)
        {
            out.push(Edit {
                at,
                keep_name: top && unnamed,
            });
            return;
        }
        self.value(t, names, false, out);
    }

    /// The byte location of a column reference to the table's `from` column under one of
    /// `names` (`""`: unqualified).
    fn matches(&self, c: &Value, names: &[String]) -> Option<usize> {
        let fields: Vec<&str> = c
            .get("fields")?
            .as_array()?
            .iter()
            .map(|f| {
                f.get("node")
                    .and_then(|n| n.get("String"))
                    .and_then(|s| s.get("sval"))
                    .and_then(Value::as_str)
                    .unwrap_or("*")
            })
            .collect();
        let (column, qualifier) = match fields.as_slice() {
            [column] => (*column, ""),
            [q, column] => (*column, *q),
            [_, q, column] => (*column, *q),
            _ => return None,
        };
        if column != self.from || !names.iter().any(|n| n == qualifier) {
            return None;
        }
        c.get("location")
            .and_then(Value::as_i64)
            .map(|l| l as usize)
    }

    /// The names a `FROM` list gives the table (its alias, else its name).
    fn scope(&self, from: Option<&Value>) -> Scope {
        let mut names = Vec::new();
        let mut relations = 0;
        let mut stack: Vec<&Value> = from.into_iter().collect();
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => {
                    if let Some(node) = map.get("node") {
                        stack.push(node);
                    } else if let Some(rv) = map.get("RangeVar") {
                        relations += 1;
                        let name = rv
                            .get("relname")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let schema = rv
                            .get("schemaname")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if name == self.table && matches!(schema, "" | "public") {
                            let alias = rv
                                .get("alias")
                                .and_then(|a| a.get("aliasname"))
                                .and_then(Value::as_str)
                                .unwrap_or(name);
                            names.push(alias.to_string());
                        }
                    } else if let Some(j) = map.get("JoinExpr") {
                        stack.extend(j.get("larg"));
                        stack.extend(j.get("rarg"));
                    } else if map.contains_key("RangeSubselect")
                        || map.contains_key("RangeFunction")
                    {
                        relations += 1;
                    }
                }
                _ => {}
            }
        }
        Scope {
            alone: relations == 1 && !names.is_empty(),
            names,
        }
    }
}

/// The byte range of the last name of the column reference starting at `at` (`cu.email`,
/// `"cu"."email"`, `email`).
fn last_name(sql: &str, at: usize) -> Option<(usize, usize)> {
    let b = sql.as_bytes();
    let mut i = at;
    loop {
        let start = i;
        if *b.get(i)? == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
        }
        if i == start {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            continue;
        }
        return Some((start, i));
    }
}

#[cfg(test)]
mod tests {
    use super::reading;

    #[test]
    fn references_move_and_the_views_columns_keep_their_names() {
        let v = "CREATE VIEW customer_list AS SELECT cu.customer_id AS id, cu.email, a.phone FROM customer cu JOIN address a ON cu.address_id = a.address_id WHERE cu.email IS NOT NULL";
        let r = reading(v, "customer", "email", "email_address").unwrap();
        assert_eq!(
            r,
            "CREATE VIEW customer_list AS SELECT cu.customer_id AS id, cu.\"email_address\" AS \"email\", a.phone FROM customer cu JOIN address a ON cu.address_id = a.address_id WHERE cu.\"email_address\" IS NOT NULL"
        );
        // Another table's column of the same name is not the table's.
        let v = "CREATE VIEW v AS SELECT a.email FROM address a JOIN customer c ON c.id = a.id";
        assert_eq!(reading(v, "customer", "email", "mail").unwrap(), v);
        // Unqualified, in a one-table query; a subquery correlated to the table's alias.
        let v = "CREATE VIEW v AS SELECT id, email FROM customer WHERE email LIKE '%@x' AND EXISTS (SELECT 1 FROM orders o WHERE o.email = customer.email)";
        let r = reading(v, "customer", "email", "mail").unwrap();
        assert!(
            r.contains(r#"SELECT id, "mail" AS "email" FROM customer WHERE "mail" LIKE"#),
            "{r}"
        );
        assert!(r.contains(r#"o.email = customer."mail""#), "{r}");
    }
}
