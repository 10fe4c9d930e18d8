use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::datetime::parse_datetime;
use crate::{RawTable, Result, table::parse_bool};

/// Above this many distinct values in the inference sample (and when more than half the sampled
/// values are distinct), a text column is free text rather than categorical.
const TEXT_MIN_DISTINCT: usize = 50;

/// The type of a column, inferred or set in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Real numbers (f64).
    Numeric,
    /// Text labels from a finite set.
    Categorical,
    /// true/false (also yes/no).
    Boolean,
    /// Free text: many distinct values (names, descriptions).
    Text,
    /// ISO-8601 dates and timestamps, held as microseconds since the Unix epoch (UTC).
    Datetime,
}

impl ColumnType {
    /// The name config uses, e.g. `numeric`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Numeric => "numeric",
            ColumnType::Categorical => "categorical",
            ColumnType::Boolean => "boolean",
            ColumnType::Text => "text",
            ColumnType::Datetime => "datetime",
        }
    }

    /// How an error describes a value this type expects.
    pub fn expected(self) -> &'static str {
        match self {
            ColumnType::Numeric => "a number",
            ColumnType::Categorical | ColumnType::Text => "text",
            ColumnType::Boolean => "a boolean (true/false, yes/no, 1/0)",
            ColumnType::Datetime => "an ISO-8601 date or timestamp",
        }
    }
}

/// What a column is for in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnRole {
    /// A model input (the default).
    #[default]
    Feature,
    /// What the model predicts.
    Target,
    /// A row identifier: kept for output, never a feature.
    Id,
    /// Read but not used.
    Ignore,
    /// A per-row sample weight.
    Weight,
    /// The group of a row, for group splits (e.g. a patient id).
    Group,
    /// The time of a row, for time-ordered splits.
    Time,
}

impl ColumnRole {
    /// The name config uses, e.g. `feature`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnRole::Feature => "feature",
            ColumnRole::Target => "target",
            ColumnRole::Id => "id",
            ColumnRole::Ignore => "ignore",
            ColumnRole::Weight => "weight",
            ColumnRole::Group => "group",
            ColumnRole::Time => "time",
        }
    }
}

/// One column's name, type and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name as in the header.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Column role.
    #[serde(default)]
    pub role: ColumnRole,
}

impl ColumnSchema {
    /// A feature column.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Self {
            name: name.into(),
            column_type,
            role: ColumnRole::Feature,
        }
    }
}

/// A per-column setting in a pipeline file: either just a type (`x = "numeric"`) or a type and
/// a role (`id = { type = "text", role = "id" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ColumnSpec {
    /// A feature of this type.
    Type(ColumnType),
    /// A type and a role, either left out to infer or default it.
    Full(ColumnSettings),
}

/// The long form of a [`ColumnSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSettings {
    /// The type; inferred when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub column_type: Option<ColumnType>,
    /// The role; a feature when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<ColumnRole>,
}

// By hand rather than `untagged`, so a mistake gets the inner error (an unknown type, or an
// unknown key such as `typ`, which the pipeline's loader turns into a suggestion) instead of
// "did not match any variant".
impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> serde::de::Visitor<'de> for Spec {
            type Value = ColumnSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a column type or a table with `type` and/or `role`")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ColumnSpec, E> {
                use serde::de::IntoDeserializer;
                ColumnType::deserialize(text.into_deserializer()).map(ColumnSpec::Type)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ColumnSpec, A::Error> {
                ColumnSettings::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ColumnSpec::Full)
            }
        }
        deserializer.deserialize_any(Spec)
    }
}

impl ColumnSpec {
    /// The type it sets, if any.
    pub fn column_type(self) -> Option<ColumnType> {
        match self {
            ColumnSpec::Type(t) => Some(t),
            ColumnSpec::Full(settings) => settings.column_type,
        }
    }

    /// The role it sets, if any.
    pub fn role(self) -> Option<ColumnRole> {
        match self {
            ColumnSpec::Type(_) => None,
            ColumnSpec::Full(settings) => settings.role,
        }
    }
}

/// The typed schema of a table, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The columns.
    pub columns: Vec<ColumnSchema>,
}

impl Schema {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The names of the columns with `role`, in order.
    pub fn with_role(&self, role: ColumnRole) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(move |c| c.role == role)
            .map(|c| c.name.as_str())
    }

    /// The schema as a `[data.columns]` TOML table, ready to paste into a pipeline file:
    /// `name = "type"` for features, `name = { type = "…", role = "…" }` otherwise, in file
    /// order.
    pub fn to_toml(&self) -> String {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let mut lines = vec!["[data.columns]".to_owned()];
        for c in &self.columns {
            let bare = !c.name.is_empty()
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let key = if bare { c.name.clone() } else { quote(&c.name) };
            let column_type = quote(c.column_type.as_str());
            lines.push(if c.role == ColumnRole::Feature {
                format!("{key} = {column_type}")
            } else {
                let role = quote(c.role.as_str());
                format!("{key} = {{ type = {column_type}, role = {role} }}")
            });
        }
        lines.push(String::new());
        lines.join("\n")
    }
}

/// Infers each column's type from its first `sample_rows` non-missing cells: numeric when all
/// parse as numbers, boolean when all read as booleans, datetime when all are ISO-8601 dates or
/// timestamps, else text when the sample has more than 50 distinct values and more than half of
/// it is distinct, else categorical. An all-missing column is numeric. `overrides` set a type
/// outright. Every column is a feature; see [`infer_schema_with`] for roles.
///
/// # Errors
/// [`Error::MissingColumn`](crate::Error::MissingColumn) when an override names a column the
/// file lacks.
pub fn infer_schema(
    raw: &RawTable,
    sample_rows: usize,
    overrides: &BTreeMap<String, ColumnType>,
) -> Result<Schema> {
    let specs: BTreeMap<String, ColumnSpec> = overrides
        .iter()
        .map(|(name, &t)| (name.clone(), ColumnSpec::Type(t)))
        .collect();
    infer_schema_with(raw, sample_rows, &specs)
}

/// Like [`infer_schema`], with per-column [`ColumnSpec`]s that may set a type, a role or both.
///
/// # Errors
/// [`Error::MissingColumn`](crate::Error::MissingColumn) when a spec names a column the file
/// lacks (suggesting the closest name).
pub fn infer_schema_with(
    raw: &RawTable,
    sample_rows: usize,
    specs: &BTreeMap<String, ColumnSpec>,
) -> Result<Schema> {
    for name in specs.keys() {
        if !raw.names.contains(name) {
            return Err(crate::table::missing_column(
                &raw.path,
                name,
                raw.names.iter(),
            ));
        }
    }
    let columns = raw
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let spec = specs.get(name).copied();
            let column_type = spec
                .and_then(ColumnSpec::column_type)
                .unwrap_or_else(|| infer_type(raw.text_column(index).flatten().take(sample_rows)));
            ColumnSchema {
                name: name.clone(),
                column_type,
                role: spec.and_then(ColumnSpec::role).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Schema { columns })
}

fn infer_type<'a>(cells: impl Iterator<Item = &'a str>) -> ColumnType {
    let sample: Vec<&str> = cells.collect();
    if sample.iter().all(|v| v.trim().parse::<f64>().is_ok()) {
        return ColumnType::Numeric;
    }
    if sample.iter().all(|v| parse_bool(v).is_some()) {
        return ColumnType::Boolean;
    }
    if sample.iter().all(|v| parse_datetime(v).is_some()) {
        return ColumnType::Datetime;
    }
    let distinct: BTreeSet<&str> = sample.iter().copied().collect();
    if distinct.len() > TEXT_MIN_DISTINCT && distinct.len() * 2 > sample.len() {
        ColumnType::Text
    } else {
        ColumnType::Categorical
    }
}

impl From<&Schema> for BTreeMap<String, ColumnType> {
    fn from(schema: &Schema) -> Self {
        schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CsvOptions, read_csv};
    use std::fmt::Write;

    #[test]
    fn infers_datetime_and_text_and_renders_toml() {
        #[derive(Deserialize)]
        struct Doc {
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            columns: BTreeMap<String, ColumnSpec>,
        }
        let dir = std::env::temp_dir().join(format!("kiln-schema-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("dt.csv");
        let mut text = String::from("when,name,kind\n");
        for i in 0..60 {
            writeln!(
                text,
                "2024-01-{:02}T10:00:00Z,person {i},k{}",
                i % 28 + 1,
                i % 3
            )
            .unwrap();
        }
        fs_err::write(&path, text).unwrap();
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        let specs = BTreeMap::from([(
            "name".to_owned(),
            ColumnSpec::Full(ColumnSettings {
                column_type: None,
                role: Some(ColumnRole::Id),
            }),
        )]);
        let schema = infer_schema_with(&raw, 1000, &specs).unwrap();
        let types: Vec<_> = schema.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [
                ColumnType::Datetime,
                ColumnType::Text,
                ColumnType::Categorical
            ]
        );
        let toml = schema.to_toml();
        assert_eq!(
            toml,
            "[data.columns]\nwhen = \"datetime\"\nname = { type = \"text\", role = \"id\" }\nkind = \"categorical\"\n",
            "{toml}"
        );
        let back: Doc = toml::from_str(&toml).unwrap();
        assert_eq!(back.data.columns["name"].role(), Some(ColumnRole::Id));
        assert_eq!(
            back.data.columns["when"],
            ColumnSpec::Type(ColumnType::Datetime)
        );
        let odd = Schema {
            columns: vec![ColumnSchema::new("a b\"c", ColumnType::Numeric)],
        };
        let back: Doc = toml::from_str(&odd.to_toml()).unwrap();
        assert!(back.data.columns.contains_key("a b\"c"));
    }

    #[test]
    fn infers_numeric_boolean_categorical() {
        let dir = std::env::temp_dir().join(format!("kiln-schema-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        fs_err::write(&path, "n,b,c,m\n1.5,true,x,NA\n-2,False,y,\n3e2,yes,1,NA\n").unwrap();
        let raw = read_csv(&path, &CsvOptions::default()).unwrap();
        let schema = infer_schema(&raw, 100, &BTreeMap::new()).unwrap();
        let types: Vec<_> = schema.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [
                ColumnType::Numeric,
                ColumnType::Boolean,
                ColumnType::Categorical,
                ColumnType::Numeric
            ]
        );
        let overrides = BTreeMap::from([("n".to_owned(), ColumnType::Categorical)]);
        let schema = infer_schema(&raw, 100, &overrides).unwrap();
        assert_eq!(
            schema.column("n").unwrap().column_type,
            ColumnType::Categorical
        );
        let unknown = BTreeMap::from([("nn".to_owned(), ColumnType::Numeric)]);
        let err = infer_schema(&raw, 100, &unknown).unwrap_err().to_string();
        assert!(err.ends_with("no column `nn`; did you mean `n`?"), "{err}");
    }
}
