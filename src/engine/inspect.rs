//! `inspect`: what an agent needs to write a correct plan — a page of tables with their columns,
//! indexes and constraints; partitions under their parent with their bounds; what each relation
//! is; the functions and views that read a table's columns; the enums and domains its columns
//! use. Compact by default, the bodies on request.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::*;
use crate::db::Catalog;
use crate::db::describe::{Described, FunctionUse, UserType};

/// A partitioned table's partitions: how many, and the first by name with their bounds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Partitions {
    pub count: usize,
    /// The first `LISTED` by name.
    pub listed: Vec<ListedPartition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ListedPartition {
    pub name: String,
    /// `FOR VALUES …`, as PostgreSQL prints it.
    pub bound: String,
}

/// A view or materialized view that reads a listed table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ViewInfo {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub materialized: bool,
    /// A materialized view: whether it holds data (an unpopulated one errors when read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub populated: Option<bool>,
    /// The listed tables' columns it reads (`table.column`): what a rename, drop or type change
    /// of one of them must rewrite it for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Its definition (with `bodies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

impl Engine {
    pub async fn inspect(
        &self,
        target: &str,
        table: Option<&str>,
        page: Page,
        bodies: bool,
    ) -> Result<InspectReport> {
        let cfg = self.config.target(target)?;
        let t = self.open_config(cfg).await?;
        let mut catalog = t.catalog().await?;
        let migration_tools = t.migration_tools(&catalog).await?;
        let total_tables = catalog.tables.len();
        let mut next = None;
        if let Some(name) = table {
            if !catalog.tables.contains_key(name) {
                return Err(Error::invalid(
                    Part::Argument,
                    format!("target `{target}` has no table `{name}`"),
                ));
            }
            catalog.tables.retain(|k, _| k == name);
        } else {
            next = one_page(&mut catalog, page);
        }
        let described = t.describe().await?;
        let partitions = partitions(&catalog, &described);
        let (views, types) = describe(&mut catalog, &described, bodies);
        Ok(InspectReport {
            target: target.to_string(),
            role: cfg.role,
            engine: t.engine().to_string(),
            migration_tools,
            total_tables,
            next,
            tables: catalog.tables,
            partitions,
            views,
            types,
        })
    }
}

/// Keeps one page of tables by name, so that a result stays within what MCP clients keep;
/// partitions are listed under their parent (`partitions`), not as tables of their own (`table`
/// names one to read it). Returns the `next` page's `after`.
fn one_page(catalog: &mut Catalog, page: Page) -> Option<String> {
    let children: BTreeSet<String> = catalog
        .partitions
        .iter()
        .filter(|(parent, _)| catalog.tables.contains_key(*parent))
        .flat_map(|(_, children)| children.iter().cloned())
        .collect();
    catalog.tables.retain(|name, _| !children.contains(name));
    let limit = page.limit.unwrap_or(20).clamp(1, 200);
    let mut rest = catalog
        .tables
        .split_off(page.after.as_deref().unwrap_or(""));
    if let Some(after) = &page.after {
        rest.remove(after);
    }
    let mut next = None;
    if let Some(cut) = rest.keys().nth(limit).cloned() {
        rest.split_off(&cut);
        next = rest.keys().next_back().cloned();
    }
    catalog.tables = rest;
    next
}

/// The listed partitioned tables' partitions, the first `LISTED` with their bounds.
fn partitions(catalog: &Catalog, described: &Described) -> BTreeMap<String, Partitions> {
    catalog
        .partitions
        .iter()
        .filter(|(parent, _)| catalog.tables.contains_key(*parent))
        .map(|(parent, children)| {
            let listed = children
                .iter()
                .take(LISTED)
                .map(|name| ListedPartition {
                    name: name.clone(),
                    bound: described
                        .relations
                        .get(name)
                        .and_then(|r| r.partition_of.as_ref())
                        .map(|p| p.bound.clone())
                        .unwrap_or_default(),
                })
                .collect();
            let partitions = Partitions {
                count: children.len(),
                listed,
            };
            (parent.clone(), partitions)
        })
        .collect()
}

/// Fills each listed table's kind, partitioning and the functions reading it; answers the views
/// reading the listed tables and the enums and domains their columns use.
fn describe(
    catalog: &mut Catalog,
    described: &Described,
    bodies: bool,
) -> (BTreeMap<String, ViewInfo>, BTreeMap<String, UserType>) {
    let mut views: BTreeMap<String, ViewInfo> = BTreeMap::new();
    let mut types = BTreeMap::new();
    // A body may hold a connection string (`dblink_connect('… password=…')`): never shown.
    let definition = |function: &str| {
        bodies
            .then(|| described.functions.get(function))
            .flatten()
            .map(|f| crate::redact::redact(&f.definition))
    };
    for (name, table) in catalog.tables.iter_mut() {
        if let Some(r) = described.relations.get(name) {
            table.kind = r.kind;
            table.partition_key = r.partition_key.clone();
            table.partition_of = r.partition_of.clone();
            table.populated = r.populated;
        }
        let columns_in = |uses: &dyn Fn(&str) -> bool| -> Vec<String> {
            table
                .columns
                .iter()
                .filter(|c| uses(&c.name))
                .map(|c| c.name.clone())
                .collect()
        };
        let mut functions: Vec<FunctionUse> = table
            .trigger_functions
            .iter()
            .map(|f| FunctionUse {
                function: f.function.clone(),
                trigger: Some(f.trigger.clone()),
                columns: columns_in(&|c| f.uses(c)),
                definition: definition(&f.function),
            })
            .collect();
        let bare = name.rsplit('.').next().unwrap_or(name);
        for (function, f) in &described.functions {
            let names_table = f.names.contains(bare) || f.names.contains(&bare.to_lowercase());
            if names_table && !functions.iter().any(|u| &u.function == function) {
                functions.push(FunctionUse {
                    function: function.clone(),
                    trigger: None,
                    columns: columns_in(&|c| f.names.contains(c)),
                    definition: definition(function),
                });
            }
        }
        table.functions = functions;
        for column in &table.columns {
            let ty = column.ty.trim_end_matches("[]");
            if let Some(t) = described.types.get(ty) {
                types.insert(ty.to_string(), t.clone());
            }
            let key = format!("{name}.{}", column.name);
            for view in catalog.column_views.get(&key).into_iter().flatten() {
                views
                    .entry(view.clone())
                    .or_default()
                    .reads
                    .push(key.clone());
            }
        }
        for view in &table.views {
            views.entry(view.clone()).or_default();
        }
    }
    for (name, view) in views.iter_mut() {
        if let Some(v) = described.views.get(name) {
            view.materialized = v.materialized;
            view.populated = v.populated;
            view.definition = bodies.then(|| crate::redact::redact(&v.definition));
        }
    }
    (views, types)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::describe::{FunctionDef, PartitionOf, Relation, RelationKind, ViewDef};
    use crate::db::{Column, TableInfo, TriggerFunction};

    fn names(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            ty: ty.into(),
            nullable: true,
            ..Column::default()
        }
    }

    /// Pagila's shape in small: a trigger function reading `last_update` through NEW, a function
    /// naming the table, a view reading two columns, a domain and an enum.
    fn film() -> (Catalog, Described) {
        let mut catalog = Catalog::default();
        catalog.tables.insert(
            "film".into(),
            TableInfo {
                columns: vec![
                    column("film_id", "integer"),
                    column("release_year", "year"),
                    column("rating", "mpaa_rating"),
                    column("last_update", "timestamp with time zone"),
                ],
                views: vec!["film_list".into()],
                trigger_functions: vec![TriggerFunction {
                    trigger: "last_updated".into(),
                    function: "last_updated()".into(),
                    names: names(&["begin", "new", "last_update", "now", "return"]),
                    arguments: vec![],
                }],
                ..TableInfo::default()
            },
        );
        for c in ["film_id", "rating"] {
            catalog
                .column_views
                .insert(format!("film.{c}"), vec!["film_list".into()]);
        }
        let mut described = Described::default();
        described.functions.insert(
            "film_in_stock(integer)".into(),
            FunctionDef {
                definition: "CREATE FUNCTION film_in_stock … SELECT film_id FROM film".into(),
                names: names(&["select", "film_id", "from", "film"]),
            },
        );
        described.functions.insert(
            "film_sync()".into(),
            FunctionDef {
                definition: "… dblink_connect('host=db password=hunter2') … FROM film".into(),
                names: names(&["dblink_connect", "from", "film"]),
            },
        );
        described.functions.insert(
            "rewards_report()".into(),
            FunctionDef {
                definition: "… FROM payment …".into(),
                names: names(&["select", "from", "payment", "rating"]),
            },
        );
        described.views.insert(
            "film_list".into(),
            ViewDef {
                definition: "SELECT film.film_id …".into(),
                ..ViewDef::default()
            },
        );
        described.types.insert(
            "year".into(),
            UserType::Domain {
                base: "integer".into(),
                not_null: false,
                default: None,
                checks: vec!["CHECK (VALUE >= 1901 AND VALUE <= 2155)".into()],
            },
        );
        described.types.insert(
            "mpaa_rating".into(),
            UserType::Enum {
                labels: vec!["G".into(), "PG".into()],
            },
        );
        (catalog, described)
    }

    #[test]
    fn a_table_is_told_with_the_functions_views_and_types_that_read_its_columns() {
        let (mut catalog, described) = film();
        let (views, types) = describe(&mut catalog, &described, false);
        let functions = &catalog.tables["film"].functions;
        assert_eq!(functions.len(), 3, "{functions:?}");
        assert_eq!(functions[0].trigger.as_deref(), Some("last_updated"));
        assert_eq!(functions[0].columns, ["last_update"]);
        assert_eq!(functions[1].function, "film_in_stock(integer)");
        assert_eq!(functions[1].columns, ["film_id"]);
        assert!(
            functions.iter().all(|f| f.definition.is_none()),
            "bodies only on request"
        );
        assert_eq!(views["film_list"].reads, ["film.film_id", "film.rating"]);
        assert_eq!(views["film_list"].definition, None);
        assert_eq!(
            types.keys().collect::<Vec<_>>(),
            ["mpaa_rating", "year"],
            "a function naming another table is not this one's"
        );
    }

    #[test]
    fn bodies_on_request_carry_each_definition() {
        let (mut catalog, described) = film();
        let (views, _) = describe(&mut catalog, &described, true);
        let functions = &catalog.tables["film"].functions;
        assert_eq!(
            functions[1].definition.as_deref(),
            Some("CREATE FUNCTION film_in_stock … SELECT film_id FROM film")
        );
        assert_eq!(
            views["film_list"].definition.as_deref(),
            Some("SELECT film.film_id …")
        );
        let sync = functions
            .iter()
            .find(|f| f.function == "film_sync()")
            .unwrap();
        let shown = sync.definition.as_deref().unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password=[redacted]"), "{shown}");
    }

    #[test]
    fn partitions_are_counted_and_the_first_listed_with_their_bounds() {
        let mut catalog = Catalog::default();
        catalog
            .tables
            .insert("payment".into(), TableInfo::default());
        let children: Vec<String> = (0..30).map(|i| format!("payment_p{i:02}")).collect();
        let mut described = Described::default();
        for c in &children {
            catalog.tables.insert(c.clone(), TableInfo::default());
            described.relations.insert(
                c.clone(),
                Relation {
                    partition_of: Some(PartitionOf {
                        parent: "payment".into(),
                        bound: format!("FOR VALUES IN ({c})"),
                    }),
                    ..Relation::default()
                },
            );
        }
        described.relations.insert(
            "payment".into(),
            Relation {
                kind: RelationKind::PartitionedTable,
                partition_key: Some("RANGE (payment_date)".into()),
                ..Relation::default()
            },
        );
        catalog.partitions.insert("payment".into(), children);
        let next = one_page(&mut catalog, Page::default());
        assert_eq!(next, None);
        assert_eq!(catalog.tables.keys().collect::<Vec<_>>(), ["payment"]);
        let p = &partitions(&catalog, &described)["payment"];
        assert_eq!(p.count, 30);
        assert_eq!(p.listed.len(), LISTED);
        assert_eq!(p.listed[3].bound, "FOR VALUES IN (payment_p03)");
        describe(&mut catalog, &described, false);
        let payment = &catalog.tables["payment"];
        assert_eq!(payment.kind, RelationKind::PartitionedTable);
        assert_eq!(
            payment.partition_key.as_deref(),
            Some("RANGE (payment_date)")
        );
    }
}
