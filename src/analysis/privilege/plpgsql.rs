//! PL/pgSQL bodies (DO blocks, functions), parsed with PostgreSQL's PL/pgSQL parser so that
//! every statement and expression inside is admitted like any other agent SQL.

use super::postgres::postgres;
use super::{Forbidden, Use, Verdict};

/// A `DO` block's PL/pgSQL body: parsed with PostgreSQL's PL/pgSQL parser; every embedded
/// statement and expression is admitted like a step's SQL. Dynamic SQL (`EXECUTE`), which no
/// parser can read ahead, is admitted here and judged by the target (`dynamic`): it runs as the
/// least-privilege role, and is refused where that role could reach a function that goes beyond
/// the database.
pub(super) fn plpgsql(body: &str, usage: Use) -> Verdict {
    admit(&wrapped(body), usage)
}

/// A whole `CREATE FUNCTION ... LANGUAGE plpgsql` (deparsed from its parse tree), admitted as
/// `plpgsql` admits a body, parsed with the function's own return type and parameters: `RETURN
/// x`, `RETURN NEXT`, `RETURN QUERY` and OUT parameters parse as PostgreSQL parses them (a body
/// wrapped as `RETURNS void` was refused as unparseable).
pub(super) fn function(create: &str, usage: Use) -> Verdict {
    admit(create, usage)
}

/// The SQL a whole `CREATE FUNCTION ... LANGUAGE plpgsql` runs (see `statements`).
pub(super) fn function_statements(create: &str) -> Vec<String> {
    plpgsql_json(create)
        .map(|json| embedded(&json))
        .unwrap_or_default()
}

fn admit(create: &str, usage: Use) -> Verdict {
    let json = plpgsql_json(create).map_err(|e| {
        Forbidden::new(
            "PL/pgSQL body",
            format!("does not parse, so drydock cannot tell what it does ({e})"),
        )
    })?;
    for sql in embedded(&json) {
        postgres(&sql, usage)?;
    }
    Ok(())
}

/// Whether a PL/pgSQL body (a whole `CREATE FUNCTION`, or a `DO` block's body when `wrap`)
/// runs SQL built at run time (`EXECUTE`, `FOR … IN EXECUTE`, `RETURN QUERY EXECUTE`, `OPEN …
/// FOR EXECUTE`). One that does not parse is not (the gate refuses it).
pub(super) fn dynamic(source: &str, wrap: bool) -> bool {
    let create = if wrap {
        wrapped(source)
    } else {
        source.to_string()
    };
    plpgsql_json(&create).is_ok_and(|json| {
        [
            "\"PLpgSQL_stmt_dynexecute\"",
            "\"PLpgSQL_stmt_dynfors\"",
            "\"dynquery\"",
        ]
        .iter()
        .any(|marker| json.contains(marker))
    })
}

/// The SQL a PL/pgSQL body runs, statement by statement (expressions as `SELECT expr`); none
/// when it does not parse (the gate refuses it then).
pub(super) fn statements(body: &str) -> Vec<String> {
    plpgsql_json(&wrapped(body))
        .map(|json| embedded(&json))
        .unwrap_or_default()
}

/// A `DO` block's `body` as the function PostgreSQL's PL/pgSQL parser takes (a `DO` block
/// returns nothing).
fn wrapped(body: &str) -> String {
    let tag = (0..)
        .map(|i| format!("$drydock{i}$"))
        .find(|t| !body.contains(t.as_str()))
        .expect("some dollar tag is free");
    format!("CREATE FUNCTION drydock_analysed() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}")
}

/// Every statement and expression of a parsed body, as SQL.
fn embedded(json: &str) -> Vec<String> {
    plpgsql_queries(json)
        .into_iter()
        .map(|(query, mode)| match mode {
            // RAW_PARSE_DEFAULT: a whole statement.
            0 => query,
            // Assignments (`x := expr`, `NEW.a := expr`): the expression is what runs.
            3..=5 => match query.split_once(":=").or_else(|| query.split_once('=')) {
                Some((_, expr)) => format!("SELECT {expr}"),
                None => format!("SELECT {query}"),
            },
            _ => format!("SELECT {query}"),
        })
        .collect()
}

/// Every `"query": "..."` of a PL/pgSQL parse with its parse mode. The parser's JSON is not
/// always well-formed (trigger variables print as `{}}`), so strings are read one by one
/// rather than the whole document.
pub(super) fn plpgsql_queries(json: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    let key = "\"query\":";
    let mut rest = json;
    while let Some(p) = rest.find(key) {
        rest = &rest[p + key.len()..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        let Some(Ok(query)) = stream.next() else {
            continue;
        };
        let used = stream.byte_offset();
        let after = &rest[used..];
        let mode = after
            .strip_prefix(",\"parseMode\":")
            .and_then(|m| m.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0);
        out.push((query, mode));
        rest = after;
    }
    out
}

/// The raw JSON of PostgreSQL's PL/pgSQL parser for a CREATE FUNCTION statement.
fn plpgsql_json(stmt: &str) -> Result<String, String> {
    use std::ffi::{CStr, CString, c_char, c_int};
    #[repr(C)]
    struct PgQueryError {
        message: *mut c_char,
        funcname: *mut c_char,
        filename: *mut c_char,
        lineno: c_int,
        cursorpos: c_int,
        context: *mut c_char,
    }
    #[repr(C)]
    struct PgQueryPlpgsqlParseResult {
        plpgsql_funcs: *mut c_char,
        error: *mut PgQueryError,
    }
    unsafe extern "C" {
        fn pg_query_parse_plpgsql(input: *const c_char) -> PgQueryPlpgsqlParseResult;
        fn pg_query_free_plpgsql_parse_result(result: PgQueryPlpgsqlParseResult);
    }
    // pg_query's own wrapper rejects the parser's output whenever it is not valid JSON (every
    // trigger function), so drydock calls libpg_query (linked by pg_query) directly. Make sure
    // the library is initialised the way pg_query does it on first use.
    let _ = pg_query::parse("SELECT 1", 0);
    let input = CString::new(stmt).map_err(|e| e.to_string())?;
    // SAFETY: `input` is a NUL-terminated string that outlives the call; the result's pointers
    // are read before it is freed exactly once by the library's own free function.
    unsafe {
        let result = pg_query_parse_plpgsql(input.as_ptr());
        let out = if !result.error.is_null() {
            Err(CStr::from_ptr((*result.error).message)
                .to_string_lossy()
                .into_owned())
        } else if result.plpgsql_funcs.is_null() {
            Err("no output".to_string())
        } else {
            Ok(CStr::from_ptr(result.plpgsql_funcs)
                .to_string_lossy()
                .into_owned())
        };
        pg_query_free_plpgsql_parse_result(result);
        out
    }
}
