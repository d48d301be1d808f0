//! A schema's fingerprint as drydock compares it: one line per object, hashed, and a difference
//! told where two definitions part.
use super::*;

/// A canonical description of a schema, one line per object/attribute, and its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fingerprint {
    pub hash: String,
    pub lines: Vec<String>,
    /// The lines of objects an extension owns → the extension: how a difference names them
    /// (`extension pg_trgm`, not its forty functions). Not part of the schema's identity, nor
    /// stored: only a difference's wording reads it.
    #[serde(skip)]
    pub owners: BTreeMap<String, String>,
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Fingerprint) -> bool {
        self.hash == other.hash && self.lines == other.lines
    }
}

impl Eq for Fingerprint {}

impl Fingerprint {
    pub fn from_lines(mut lines: Vec<String>) -> Fingerprint {
        use sha2::{Digest, Sha256};
        lines.sort();
        let hash = Sha256::digest(lines.join("\n").as_bytes());
        Fingerprint {
            hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
            lines,
            owners: BTreeMap::new(),
        }
    }

    /// The fingerprint with `owners` (line → extension) known.
    pub fn owned_by(mut self, owners: BTreeMap<String, String>) -> Fingerprint {
        self.owners = owners;
        self
    }

    /// The fingerprint with every date or time literal in a view's definition masked: the
    /// instant a special literal (`'now'::timestamp`, `'today'::date`) froze into the view when
    /// it was created, which a view created again from the same SQL later freezes differently.
    pub fn without_frozen_time(&self) -> Fingerprint {
        let owners = self.owners.clone();
        Fingerprint::from_lines(
            self.lines
                .iter()
                .map(|l| {
                    if l.starts_with("view ") || l.starts_with("materialized view ") {
                        mask_time_literals(l)
                    } else {
                        l.clone()
                    }
                })
                .collect(),
        )
        .owned_by(owners)
    }

    /// What `other` has that `self` lacks and vice versa, briefly: an object on both sides whose
    /// definition changed is one `~` item showing where the two part (a view's 5 KB definition
    /// is not repeated twice to say one word differs); the rest `-`/`+`, each cut short; at most
    /// five of each, with how many more.
    pub fn diff(&self, other: &Fingerprint) -> String {
        let a: std::collections::BTreeSet<&String> = self.lines.iter().collect();
        let b: std::collections::BTreeSet<&String> = other.lines.iter().collect();
        let mut gone: Vec<&String> = a.difference(&b).copied().collect();
        let mut new: Vec<&String> = b.difference(&a).copied().collect();
        // An extension's objects are the extension's: named once, with how many.
        let owner = |l: &String| self.owners.get(l).or_else(|| other.owners.get(l)).cloned();
        let extensions = |lines: &mut Vec<&String>| -> Vec<String> {
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            lines.retain(|l| match owner(l) {
                Some(e) => {
                    *by.entry(e).or_default() += 1;
                    false
                }
                None => true,
            });
            by.into_iter()
                .map(|(e, n)| format!("extension {e} ({n} objects)"))
                .collect()
        };
        let (gone_extensions, new_extensions) = (extensions(&mut gone), extensions(&mut new));
        let mut changed = Vec::new();
        gone.retain(|g| {
            let head = object_of(g);
            match new.iter().position(|n| object_of(n) == head) {
                Some(i) => {
                    changed.push(parted(g, new.remove(i)));
                    false
                }
                None => true,
            }
        });
        let list = |sign: &str, items: Vec<String>| -> Vec<String> {
            let more = items.len().saturating_sub(5);
            let mut out: Vec<String> = items
                .into_iter()
                .take(5)
                .map(|l| format!("{sign}{l}"))
                .collect();
            if more > 0 {
                out.push(format!("({more} more {sign} lines)"));
            }
            out
        };
        [
            list("~", changed),
            list(
                "-",
                gone_extensions
                    .into_iter()
                    .chain(gone.into_iter().map(|l| cut(l, 0, 200)))
                    .collect(),
            ),
            list(
                "+",
                new_extensions
                    .into_iter()
                    .chain(new.into_iter().map(|l| cut(l, 0, 200)))
                    .collect(),
            ),
        ]
        .concat()
        .join("; ")
    }
}

/// A fingerprint line's object: its first two words (`view public.film_list`, `column
/// public.film.length`), what pairs a definition before with the one after.
fn object_of(line: &str) -> &str {
    let mut spaces = line.match_indices(' ').map(|(i, _)| i);
    match (spaces.next(), spaces.next()) {
        (Some(_), Some(second)) => &line[..second],
        _ => line,
    }
}

/// `line` from byte `at` (back to a char boundary), `len` bytes at most, marked where cut.
fn cut(line: &str, at: usize, len: usize) -> String {
    let mut start = at.min(line.len());
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        &line[start..end],
        if end < line.len() { "…" } else { "" }
    )
}

/// One object's definition before and after, from a little before where they part.
fn parted(before: &str, after: &str) -> String {
    let at = before
        .bytes()
        .zip(after.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(before.len().min(after.len()));
    let from = at.saturating_sub(40);
    format!(
        "{}: {} → {}",
        object_of(before),
        cut(before, from, 120),
        cut(after, from, 120)
    )
}

/// `'2026-12-06 20:39:30.235294'::timestamp …` and `'2026-12-06'::date` in `line` (as
/// `pg_get_viewdef` prints a constant) with the value masked.
fn mask_time_literals(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('\'') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('\'') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let (value, tail) = (&after[..close], &after[close + 1..]);
        let dated = value.len() >= 10
            && value.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        let typed = ["::timestamp", "::date", "::time"]
            .iter()
            .any(|t| tail.starts_with(t));
        if dated && typed {
            out.push_str("'(frozen time)'");
        } else {
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_changed_definition_is_shown_where_it_parts_not_whole() {
        let long = "x ".repeat(3000);
        let before = super::Fingerprint::from_lines(vec![
            format!("view public.film_list {long} WHERE length > 60 {long}"),
            "table public.gone".to_string(),
        ]);
        let after = super::Fingerprint::from_lines(vec![
            format!("view public.film_list {long} WHERE length > 90 {long}"),
            "table public.new".to_string(),
        ]);
        let d = before.diff(&after);
        assert!(d.len() < 700, "{} characters: {d}", d.len());
        assert!(d.contains("~view public.film_list: "), "{d}");
        assert!(
            d.contains("length > 60") && d.contains("length > 90"),
            "{d}"
        );
        assert!(
            d.contains("-table public.gone") && d.contains("+table public.new"),
            "{d}"
        );
    }

    #[test]
    fn only_the_instants_frozen_into_views_are_masked() {
        let f = Fingerprint::from_lines(vec![
            "view public.v: SELECT (p.published < ('2026-12-06 20:39:30.235294'::timestamp without time zone - '1 mon'::interval)), '2024-01-01'::date AS since, 'x 2024-01-01'::text".into(),
            "column public.t.at timestamp default '2026-12-06 20:39:30'::timestamp without time zone".into(),
        ]);
        let masked = f.without_frozen_time();
        assert!(masked.lines.iter().any(|l| l.starts_with("view")
            && l.contains("('(frozen time)'::timestamp without time zone - '1 mon'::interval)")
            && l.contains("'(frozen time)'::date")
            && l.contains("'x 2024-01-01'::text")));
        // A column's default is no view: its literal is a value someone chose.
        assert!(
            masked
                .lines
                .iter()
                .any(|l| l.contains("'2026-12-06 20:39:30'"))
        );
    }
}
