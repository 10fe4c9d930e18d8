use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{RawTable, Result, table::parse_bool};

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
}

impl ColumnType {
    /// How an error describes a value this type expects.
    pub fn expected(self) -> &'static str {
        match self {
            ColumnType::Numeric => "a number",
            ColumnType::Categorical => "text",
            ColumnType::Boolean => "a boolean (true/false, yes/no, 1/0)",
        }
    }
}

/// One column's name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name as in the header.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
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
}

/// Infers each column's type from its first `sample_rows` non-missing cells: numeric when all
/// parse as numbers, boolean when all read as booleans (and are not numbers), else
/// categorical. An all-missing column is numeric. `overrides` set a type outright.
///
/// # Errors
/// [`Error::MissingColumn`] when an override names a column the file lacks.
pub fn infer_schema(
    raw: &RawTable,
    sample_rows: usize,
    overrides: &BTreeMap<String, ColumnType>,
) -> Result<Schema> {
    for name in overrides.keys() {
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
            let column_type = overrides.get(name).copied().unwrap_or_else(|| {
                let sample: Vec<&str> =
                    raw.text_column(index).flatten().take(sample_rows).collect();
                if sample.iter().all(|v| v.trim().parse::<f64>().is_ok()) {
                    ColumnType::Numeric
                } else if sample.iter().all(|v| parse_bool(v).is_some()) {
                    ColumnType::Boolean
                } else {
                    ColumnType::Categorical
                }
            });
            ColumnSchema {
                name: name.clone(),
                column_type,
            }
        })
        .collect();
    Ok(Schema { columns })
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
