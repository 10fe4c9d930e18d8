//! The data verbs: `kiln validate`, `kiln stats` and `kiln schema`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use kiln_data::stats::{NumericStats, Summary};
use kiln_data::{DatasetStats, Format, ReadOptions, Severity, StatsOptions, Table};
use kiln_pipeline::{Error, PipelineConfig, Result};

/// How `kiln stats` and `kiln schema` read a data file.
#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// The data file (.csv, .csv.gz, .parquet, .jsonl, .jsonl.gz).
    data: PathBuf,
    /// `csv`, `parquet` or `jsonl`, for a file whose name does not tell.
    #[arg(long, value_parser = parse_format)]
    format: Option<Format>,
    /// Rows sampled (per column) to infer each column's type.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    infer_rows: u64,
}

fn parse_format(name: &str) -> std::result::Result<Format, String> {
    match name {
        "csv" => Ok(Format::Csv),
        "parquet" => Ok(Format::Parquet),
        "jsonl" => Ok(Format::JsonLines),
        other => Err(format!("`{other}` is not csv, parquet or jsonl")),
    }
}

impl DataArgs {
    /// The file, read and typed by inference.
    fn read(&self) -> Result<Table> {
        let options = ReadOptions {
            format: self.format,
            ..ReadOptions::default()
        };
        let raw = kiln_data::read_table(&self.data, &options)?;
        let infer_rows = usize::try_from(self.infer_rows).unwrap_or(usize::MAX);
        let schema = kiln_data::infer_schema(&raw, infer_rows, &BTreeMap::new())?;
        Ok(raw.conform(&schema, &[])?)
    }
}

/// `kiln validate`: reads and types the pipeline's data, runs `[validate]`, prints the report.
///
/// # Errors
/// [`Error::ValidationFailed`] (exit code 1) after printing, when an error rule fails.
pub(crate) fn validate(pipeline: &Path, data: Option<PathBuf>, json: bool) -> Result<()> {
    let mut config = PipelineConfig::load(pipeline)?;
    if let Some(data) = data {
        config.set_source(data);
    }
    let report = kiln_pipeline::validate(&config)?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&report).expect("reports serialize");
        writeln!(out, "{text}")?;
    } else {
        let errors = report.with_severity(Severity::Error).count();
        let warnings = report.with_severity(Severity::Warn).count();
        writeln!(
            out,
            "{}: {} rows; {errors} error rule(s) and {warnings} warning rule(s) failed",
            config.source().display(),
            report.rows
        )?;
        if !report.failures.is_empty() {
            writeln!(
                out,
                "{:<8} {:<20} {:<20} {:>9}  message",
                "severity", "rule", "column", "rows"
            )?;
        }
        for f in &report.failures {
            let severity = match f.severity {
                Severity::Error => "error",
                Severity::Warn => "warn",
            };
            let column = f.column.as_deref().unwrap_or("-");
            let rows: Vec<String> = f.examples.iter().map(ToString::to_string).collect();
            let message = if rows.is_empty() {
                f.message.clone()
            } else {
                format!("{} (first: {})", f.message, rows.join(", "))
            };
            writeln!(
                out,
                "{severity:<8} {:<20} {column:<20} {:>9}  {message}",
                f.rule, f.count
            )?;
        }
    }
    if report.has_errors() {
        return Err(Error::ValidationFailed {
            path: config.source().to_path_buf(),
            report,
        });
    }
    Ok(())
}

/// `kiln stats`: one-pass statistics of every column of a data file.
pub(crate) fn stats(args: &DataArgs, json: bool) -> Result<()> {
    let table = args.read()?;
    let stats = kiln_data::compute_stats(&table, &StatsOptions::default())?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&stats).expect("statistics serialize");
        writeln!(out, "{text}")?;
        return Ok(());
    }
    write!(out, "{}", render_stats(&args.data, &stats))?;
    Ok(())
}

/// The statistics as two terminal tables: numeric (and datetime) columns, then the others.
fn render_stats(path: &Path, stats: &DatasetStats) -> String {
    let mut lines = vec![format!(
        "{}: {} rows, {} columns",
        path.display(),
        stats.rows,
        stats.columns.len()
    )];
    let numeric: Vec<_> = stats
        .columns
        .iter()
        .filter_map(|c| match &c.summary {
            Summary::Numeric(n) => Some((c, n)),
            Summary::Categorical(_) => None,
        })
        .collect();
    if !numeric.is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "{:<18} {:<8} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  histogram",
            "column", "type", "count", "missing", "mean", "std", "min", "p25", "p50", "p75", "max"
        ));
        for (c, n) in numeric {
            let q = |at: f64| {
                let nearest = n.quantiles.iter().find(|q| (q.q - at).abs() < 1e-9);
                nearest.map(|q| q.value)
            };
            let cells = if let (Some(min), Some(max)) = (&n.min_time, &n.max_time) {
                // Datetimes: the range as timestamps; means of microseconds say little.
                format!("{:>43}  {min} .. {max}", "")
            } else {
                [n.mean, n.std, n.min, q(0.25), q(0.5), q(0.75), n.max]
                    .map(number)
                    .map(|s| format!("{s:>10}"))
                    .join(" ")
            };
            lines.push(format!(
                "{:<18} {:<8} {:>9} {:>8} {cells}  {}",
                clip(&c.name, 18),
                c.column_type.as_str(),
                c.count,
                c.missing,
                sparkline(n)
            ));
        }
    }
    let categorical: Vec<_> = stats
        .columns
        .iter()
        .filter_map(|c| match &c.summary {
            Summary::Categorical(s) => Some((c, s)),
            Summary::Numeric(_) => None,
        })
        .collect();
    if !categorical.is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "{:<18} {:<11} {:>9} {:>8} {:>9}  top values (count)",
            "column", "type", "count", "missing", "distinct"
        ));
        for (c, s) in categorical {
            let top: Vec<String> = s
                .top
                .iter()
                .take(5)
                .map(|v| format!("{} ({})", clip(&v.value, 24), v.count))
                .collect();
            let distinct = format!("{}{}", s.distinct, if s.capped { "+" } else { "" });
            lines.push(format!(
                "{:<18} {:<11} {:>9} {:>8} {distinct:>9}  {}",
                clip(&c.name, 18),
                c.column_type.as_str(),
                c.count,
                c.missing,
                top.join(", ")
            ));
        }
    }
    lines.push(String::new());
    lines.join("\n")
}

/// A number in at most 10 characters.
fn number(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v != 0.0 && !(1e-3..1e7).contains(&v.abs()) => format!("{v:.3e}"),
        Some(v) => {
            let text = format!("{v:.4}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            text.chars().take(10).collect()
        }
    }
}

/// The histogram as a row of block characters, one per bin, scaled to the fullest bin.
fn sparkline(stats: &NumericStats) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = stats.histogram.counts.iter().copied().max().unwrap_or(0);
    if top == 0 {
        return String::new();
    }
    stats
        .histogram
        .counts
        .iter()
        .map(|&n| {
            if n == 0 {
                ' '
            } else {
                // n <= top, so the index is at most 7.
                let index = usize::try_from(n * 7 / top).unwrap_or(7);
                BLOCKS[index]
            }
        })
        .collect()
}

/// `text` cut to `width` characters, with `…` when cut.
fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width - 1).collect();
        cut.push('…');
        cut
    }
}

/// `kiln schema`: the inferred schema as a `[data.columns]` table for pipeline.toml.
pub(crate) fn schema(args: &DataArgs) -> Result<()> {
    let table = args.read()?;
    write!(std::io::stdout().lock(), "{}", table.schema().to_toml())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fit_their_column() {
        assert_eq!(number(Some(1.5)), "1.5");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(Some(-0.123_456)), "-0.1235");
        assert_eq!(number(Some(1.0e9)), "1.000e9");
        assert_eq!(number(Some(0.0)), "0");
        assert_eq!(number(None), "-");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
