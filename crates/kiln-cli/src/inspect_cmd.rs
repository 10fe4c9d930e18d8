//! `kiln inspect`: what a bundle's transforms learned.

use std::io::Write;
use std::path::Path;

use kiln_pipeline::{OpenedBundle, Result};
use kiln_transform::FittedTarget;

/// Prints each fitted input column (kind, output width, learned parameters) and the target;
/// with `json`, the fitted features and target as stored in the bundle (a directory or a
/// verified `.kiln` file).
pub(crate) fn inspect(bundle: &Path, json: bool) -> Result<()> {
    let spec = OpenedBundle::open(bundle)?.spec()?;
    let mut out = std::io::stdout().lock();
    if json {
        let value = serde_json::json!({ "features": spec.features, "target": spec.target });
        let text = serde_json::to_string_pretty(&value).expect("fitted state serializes");
        writeln!(out, "{text}")?;
        return Ok(());
    }
    let name_width = spec
        .features
        .columns
        .iter()
        .map(|c| c.name().chars().count())
        .max()
        .unwrap_or(0)
        .max("column".len());
    writeln!(
        out,
        "{:<name_width$}  {:<11}  {:>6}  learned",
        "column", "kind", "width"
    )?;
    for column in &spec.features.columns {
        let (kind, learned) = column.describe();
        writeln!(
            out,
            "{:<name_width$}  {kind:<11}  {:>6}  {learned}",
            column.name(),
            column.width()
        )?;
    }
    writeln!(
        out,
        "{} inputs -> {} model features",
        spec.features.columns.len(),
        spec.features.width()
    )?;
    match &spec.target {
        FittedTarget::Classification { name, classes } => {
            writeln!(
                out,
                "target `{name}`: {} classes: {}",
                classes.len(),
                classes.join(", ")
            )?;
        }
        FittedTarget::Regression { name, mean, std } => writeln!(
            out,
            "target `{name}`: regression, standardized with mean {mean:.6} and std {std:.6} (inverted on predict)"
        )?,
    }
    Ok(())
}
