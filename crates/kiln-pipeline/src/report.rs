//! `kiln report`: one self-contained HTML page about a finished run: what ran, learning
//! curves, final metrics, test-split charts (confusion matrix, ROC, precision-recall and
//! calibration for classification; predicted vs actual and residuals for regression),
//! permutation feature importance and the training rows' statistics. Charts are inline SVG
//! drawn by plotters; the page loads nothing from anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use kiln_core::BackendKind;
use kiln_data::stats::Summary;
use kiln_data::{ColumnRef, ColumnRole, DatasetStats, Split, Table};
use kiln_train::metrics::{RankingCurve, ReliabilityBin};
use kiln_train::{Outcome, Task};
use kiln_transform::Targets;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

use crate::bundle::{Predictions, STATS_FILE, read_json};
use crate::{AnyPredictor, Error, Manifest, PipelineConfig, Result};

/// The report's file name inside the run directory, when no output is given.
pub const REPORT_FILE: &str = "report.html";

/// Shuffles of each feature column for permutation importance.
const IMPORTANCE_REPEATS: usize = 5;

/// One line of metrics.jsonl ([`kiln_train::EpochStats`], with a diverged loss as `null`).
#[derive(Debug, Deserialize)]
struct EpochLine {
    epoch: usize,
    train_loss: Option<f64>,
    valid_loss: Option<f64>,
    #[serde(default)]
    valid_metrics: BTreeMap<String, Option<f64>>,
}

/// The drop of the main test metric when one feature column is shuffled.
#[derive(Debug, Clone, PartialEq)]
struct Importance {
    feature: String,
    /// Mean drop over the shuffles.
    drop: f64,
    /// Standard deviation of the drop over the shuffles.
    std: f64,
}

/// Writes the report of the run in `run` to `output` (default `run/report.html`), predicting
/// the test split on `backend`, and returns the file written.
///
/// # Errors
/// [`Error::NotARun`] when `run` lacks a manifest, metrics log, config snapshot, statistics
/// or bundle; [`Error::ReportInput`] when the run's data file is missing or changed since the
/// run (the test-split charts need it); data, bundle and IO errors naming their file.
pub fn report(run: &Path, backend: BackendKind, output: Option<&Path>) -> Result<PathBuf> {
    let require = |file: &'static str| {
        let path = run.join(file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NotARun {
                path: run.to_path_buf(),
                missing: file,
            })
        }
    };
    let manifest: Manifest = read_json(&require("manifest.json")?)?;
    let epochs = read_epochs(&require("metrics.jsonl")?)?;
    let config_path = require("config.json")?;
    let splits_path = require("splits.json")?;
    let stats: DatasetStats = read_json(&require(STATS_FILE)?)?;
    require("bundle/bundle.json")?;

    let raw: PipelineConfig = read_json(&config_path)?;
    let config = raw.check(&run.join("pipeline.toml"))?;
    let data = config.source();
    if !data.is_file() {
        return Err(Error::ReportInput {
            path: data.to_path_buf(),
            reason: "the run's data file is missing; the report needs it for the test-split \
                     charts (ROC, calibration, residuals, feature importance)"
                .into(),
        });
    }
    let ingested = crate::ingest(&config)?;
    if ingested.data_hash.blake3 != manifest.data_hash.blake3 {
        return Err(Error::ReportInput {
            path: data.to_path_buf(),
            reason: format!(
                "the data file changed since the run (blake3 {} then, {} now); the test-split \
                 charts need the data the run was trained on",
                manifest.data_hash.blake3, ingested.data_hash.blake3
            ),
        });
    }
    let table = ingested.table;
    let split: Split = read_json(&splits_path)?;
    if let Some(&row) = split.test.iter().find(|&&r| r >= table.n_rows()) {
        return Err(Error::ReportInput {
            path: splits_path,
            reason: format!("test row {row} is past the data's {} rows", table.n_rows()),
        });
    }
    let predictor = AnyPredictor::load(&run.join("bundle"), backend)?;

    let mut page = Page::default();
    page.header(run, &manifest, backend);
    page.learning_curves(&epochs, manifest.best_epoch)?;
    page.metrics_table(&manifest.metrics);
    if split.test.is_empty() {
        page.note("The run has no test rows: no test-split charts or feature importance.");
    } else {
        let test = TestSplit::predict(&predictor, &table, &split.test)?;
        match &test.outcome {
            TestOutcome::Classes {
                classes,
                probabilities,
                labels,
            } => {
                if let Some(matrix) = manifest.confusion.get("test") {
                    page.confusion(classes, matrix)?;
                }
                page.ranking_curves(classes, probabilities, labels)?;
                page.calibration(probabilities, labels)?;
            }
            TestOutcome::Values { predicted, actual } => {
                page.regression(predicted, actual)?;
            }
        }
        let features: Vec<&str> = predictor
            .spec()
            .schema
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::Feature)
            .map(|c| c.name.as_str())
            .collect();
        let baseline = test.baseline();
        let importance = permutation_importance(
            &predictor,
            &table,
            &test,
            baseline,
            &features,
            manifest.seed,
        )?;
        page.importance(test.metric_name(), baseline, &importance)?;
    }
    page.feature_stats(&stats, &manifest)?;

    let out = output.map_or_else(|| run.join(REPORT_FILE), Path::to_path_buf);
    let title = format!("kiln report: {}", display_name(run));
    kiln_core::fsx::write_atomic(&out, page.finish(&title).as_bytes())?;
    Ok(out)
}

/// Reads metrics.jsonl; a bad line is an error naming the file, line and column.
fn read_epochs(path: &Path) -> Result<Vec<EpochLine>> {
    let bytes = fs_err::read(path)?;
    serde_json::Deserializer::from_slice(&bytes)
        .into_iter::<EpochLine>()
        .collect::<std::result::Result<_, _>>()
        .map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// The run directory's name (`penguins-species-1`), or the path when it has none.
fn display_name(run: &Path) -> String {
    run.file_name().map_or_else(
        || run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The test rows' predictions and truth.
struct TestSplit<'a> {
    rows: &'a [usize],
    outcome: TestOutcome,
}

enum TestOutcome {
    Classes {
        classes: Vec<String>,
        probabilities: kiln_core::Matrix,
        labels: Vec<i64>,
    },
    Values {
        predicted: Vec<f64>,
        actual: Vec<f64>,
    },
}

impl<'a> TestSplit<'a> {
    fn predict(predictor: &AnyPredictor, table: &Table, rows: &'a [usize]) -> Result<Self> {
        let target = &predictor.spec().target;
        let outcome = match (predictor.predict(table, rows)?, target.encode(table, rows)?) {
            (
                Predictions::Classes {
                    classes,
                    probabilities,
                },
                Targets::Classes(labels),
            ) => TestOutcome::Classes {
                classes,
                probabilities,
                labels,
            },
            (Predictions::Values(predicted), Targets::Values(_)) => {
                // In the file's units, as `score` computes the test metrics.
                let ColumnRef::Numeric(values) = table.require(target.name())? else {
                    unreachable!("a regression target is numeric")
                };
                TestOutcome::Values {
                    predicted,
                    actual: rows.iter().map(|&r| values.value(r)).collect(),
                }
            }
            _ => unreachable!("predictions and targets come from one fitted target"),
        };
        Ok(Self { rows, outcome })
    }

    /// The metric whose drop measures importance.
    fn metric_name(&self) -> &'static str {
        match self.outcome {
            TestOutcome::Classes { .. } => "accuracy",
            TestOutcome::Values { .. } => "r2",
        }
    }

    /// The main metric of the model's own test predictions.
    fn baseline(&self) -> f64 {
        match &self.outcome {
            TestOutcome::Classes {
                probabilities,
                labels,
                ..
            } => kiln_train::metrics::classification(probabilities, labels)["accuracy"],
            TestOutcome::Values { predicted, actual } => {
                kiln_train::metrics::regression(predicted, actual)["r2"]
            }
        }
    }

    /// The main metric of new predictions for the same rows and truth.
    fn metric_of(&self, predictions: Predictions) -> f64 {
        match (&self.outcome, predictions) {
            (TestOutcome::Classes { labels, .. }, Predictions::Classes { probabilities, .. }) => {
                kiln_train::metrics::classification(&probabilities, labels)["accuracy"]
            }
            (TestOutcome::Values { actual, .. }, Predictions::Values(predicted)) => {
                kiln_train::metrics::regression(&predicted, actual)["r2"]
            }
            _ => unreachable!("one predictor makes both"),
        }
    }
}

/// For each feature column, the drop of the main test metric (from `baseline`) when the column's test values
/// are shuffled among the test rows ([`IMPORTANCE_REPEATS`] times, each column from its own
/// seeded stream, so adding a column does not change another's numbers); largest drop first.
fn permutation_importance(
    predictor: &AnyPredictor,
    table: &Table,
    test: &TestSplit<'_>,
    baseline: f64,
    features: &[&str],
    seed: u64,
) -> Result<Vec<Importance>> {
    let mut importance = Vec::with_capacity(features.len());
    for &feature in features {
        let mut rng = kiln_core::rng::stream(seed, &format!("report/importance/{feature}"));
        let mut drops = Vec::with_capacity(IMPORTANCE_REPEATS);
        for _ in 0..IMPORTANCE_REPEATS {
            let shuffled = table.shuffle_column(feature, test.rows, &mut rng)?;
            drops.push(baseline - test.metric_of(predictor.predict(&shuffled, test.rows)?));
        }
        #[allow(clippy::cast_precision_loss)] // A handful of repeats.
        let n = drops.len() as f64;
        let drop = drops.iter().sum::<f64>() / n;
        let std = (drops.iter().map(|d| (d - drop).powi(2)).sum::<f64>() / n).sqrt();
        importance.push(Importance {
            feature: feature.to_owned(),
            drop,
            std,
        });
    }
    importance.sort_by(|a, b| b.drop.total_cmp(&a.drop));
    Ok(importance)
}

/// Categorical colors (matplotlib's tab10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const GRID: RGBColor = RGBColor(225, 225, 225);
const LIGHT_GRID: RGBColor = RGBColor(243, 243, 243);
const REFERENCE: RGBColor = RGBColor(150, 150, 150);
const FONT: &str = "sans-serif";
/// Font sizes in plotters' units (it writes 1/1.24 of them into the SVG).
const CAPTION: u32 = 19;
const LABEL: u32 = 14;
const DESC: u32 = 15;

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The HTML body, built section by section.
#[derive(Default)]
struct Page {
    nav: Vec<(&'static str, &'static str)>,
    body: String,
}

impl Page {
    fn section(&mut self, id: &'static str, title: &'static str, intro: &str) {
        if !self.nav.is_empty() {
            self.body.push_str("</section>\n");
        }
        self.nav.push((id, title));
        // Writing into a String cannot fail.
        let _ = writeln!(self.body, "<section id=\"{id}\">\n<h2>{title}</h2>");
        if !intro.is_empty() {
            let _ = writeln!(self.body, "<p>{intro}</p>");
        }
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p class=\"note\">{}</p>", escape(text));
    }

    fn charts(&mut self, svgs: &[String]) {
        self.body.push_str("<div class=\"charts\">\n");
        for svg in svgs {
            let _ = writeln!(self.body, "<figure>{svg}</figure>");
        }
        self.body.push_str("</div>\n");
    }

    fn finish(mut self, title: &str) -> String {
        if !self.nav.is_empty() {
            self.body.push_str("</section>\n");
        }
        let nav: Vec<String> = self
            .nav
            .iter()
            .map(|(id, title)| format!("<a href=\"#{id}\">{title}</a>"))
            .collect();
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head><body>\n<nav>{}</nav>\n<main>\n{}</main>\n</body></html>\n",
            escape(title),
            nav.join(" · "),
            self.body
        )
    }

    fn header(&mut self, run: &Path, m: &Manifest, backend: BackendKind) {
        let _ = writeln!(self.body, "<header><h1>{}</h1>", escape(&display_name(run)));
        let status = match m.status {
            Outcome::Completed => "completed".to_owned(),
            Outcome::EarlyStopped => "stopped early".to_owned(),
            Outcome::Interrupted => "interrupted".to_owned(),
            Outcome::Diverged { epoch, step } => format!("diverged at epoch {epoch}, step {step}"),
        };
        let task = match m.task {
            Task::Classification { classes } => format!("classification, {classes} classes"),
            Task::Regression => "regression".to_owned(),
        };
        let widths: Vec<String> = std::iter::once(m.model.inputs)
            .chain(m.model.hidden.iter().copied())
            .chain(std::iter::once(m.model.outputs))
            .map(|w| w.to_string())
            .collect();
        let splits: Vec<String> = ["train", "valid", "test"]
            .iter()
            .filter_map(|s| m.splits.get(*s).map(|r| format!("{s} {}", r.rows)))
            .collect();
        let rows = [
            (
                "pipeline",
                format!("{} ({})", m.name, m.config_path.display()),
            ),
            ("data", m.data_path.display().to_string()),
            (
                "data blake3",
                format!("{} ({} bytes)", m.data_hash.blake3, m.data_hash.bytes),
            ),
            ("rows", format!("{} ({})", m.rows, splits.join(", "))),
            ("task", task),
            (
                "trained on",
                format!(
                    "{} on {} ({}), {}",
                    m.device.backend, m.device.name, m.device.device_type, m.precision
                ),
            ),
            ("model", format!("{} {}", m.model.kind, widths.join("-"))),
            ("parameters", m.parameters.to_string()),
            (
                "epochs",
                format!("{} run, best {}", m.epochs_run, m.best_epoch),
            ),
            ("status", status),
            ("seed", m.seed.to_string()),
            ("kiln", m.kiln_version.clone()),
            ("report predicted on", backend.to_string()),
        ];
        self.body.push_str("<table class=\"facts\">\n");
        for (key, value) in rows {
            let _ = writeln!(
                self.body,
                "<tr><th>{key}</th><td>{}</td></tr>",
                escape(&value)
            );
        }
        self.body.push_str("</table>\n");
        let layers: Vec<String> = m
            .model
            .summary()
            .iter()
            .map(|l| format!("<li>{} ({} parameters)</li>", escape(&l.layer), l.params))
            .collect();
        let _ = writeln!(
            self.body,
            "<details><summary>layers</summary><ul>{}</ul></details>\n</header>",
            layers.join("")
        );
    }

    fn learning_curves(&mut self, epochs: &[EpochLine], best: usize) -> Result<()> {
        self.section(
            "learning-curves",
            "Learning curves",
            "Per epoch, from metrics.jsonl; the dashed line marks the best epoch, whose weights \
             the bundle keeps.",
        );
        #[allow(clippy::cast_precision_loss)] // Epoch numbers are small.
        let x = |e: &EpochLine| e.epoch as f64;
        let line = |name: &str, value: &dyn Fn(&EpochLine) -> Option<f64>, i| Line {
            name: name.to_owned(),
            points: epochs
                .iter()
                .filter_map(|e| value(e).map(|v| (x(e), v)))
                .collect(),
            color: color(i),
            markers: epochs.len() <= 1,
        };
        #[allow(clippy::cast_precision_loss)] // Epoch numbers are small.
        let best = best as f64;
        let mut svgs = vec![line_chart(&LineChart {
            title: "loss",
            x_desc: "epoch",
            y_desc: "loss",
            size: (720, 360),
            lines: vec![
                line("train loss", &|e| e.train_loss, 0),
                line("valid loss", &|e| e.valid_loss, 1),
            ],
            references: vec![vertical(best)],
            axes: Axes::Epochs,
            legend: Some(SeriesLabelPosition::UpperRight),
        })?];
        let names: std::collections::BTreeSet<&String> =
            epochs.iter().flat_map(|e| e.valid_metrics.keys()).collect();
        for name in names {
            let title = format!("valid {name}");
            svgs.push(line_chart(&LineChart {
                title: &title,
                x_desc: "epoch",
                y_desc: name,
                size: (360, 240),
                lines: vec![line(
                    name,
                    &|e| e.valid_metrics.get(name).copied().flatten(),
                    2,
                )],
                references: vec![vertical(best)],
                axes: Axes::Epochs,
                legend: None,
            })?);
        }
        self.charts(&svgs);
        Ok(())
    }

    fn metrics_table(&mut self, metrics: &BTreeMap<String, BTreeMap<String, f64>>) {
        self.section(
            "metrics",
            "Final metrics",
            "The kept weights on the validation and test rows, as the manifest records them.",
        );
        let splits: Vec<&str> = ["valid", "test"]
            .into_iter()
            .filter(|s| metrics.contains_key(*s))
            .collect();
        let names: std::collections::BTreeSet<&String> =
            metrics.values().flat_map(BTreeMap::keys).collect();
        self.body
            .push_str("<table class=\"numbers\">\n<tr><th>metric</th>");
        for split in &splits {
            let _ = write!(self.body, "<th>{split}</th>");
        }
        self.body.push_str("</tr>\n");
        for name in names {
            let _ = write!(self.body, "<tr><td>{}</td>", escape(name));
            for split in &splits {
                let value = match metrics[*split].get(name) {
                    Some(v) if v.is_nan() => "undefined".to_owned(),
                    Some(v) => format!("{v:.4}"),
                    None => String::new(),
                };
                let _ = write!(self.body, "<td>{value}</td>");
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    fn confusion(&mut self, classes: &[String], matrix: &[Vec<usize>]) -> Result<()> {
        self.section(
            "confusion-matrix",
            "Confusion matrix",
            "Test rows: true class down, predicted class across; shading is the share of the \
             true class.",
        );
        let svg = confusion_chart(classes, matrix)?;
        self.charts(&[svg]);
        Ok(())
    }

    fn ranking_curves(
        &mut self,
        classes: &[String],
        probabilities: &kiln_core::Matrix,
        labels: &[i64],
    ) -> Result<()> {
        let curves: Vec<(usize, RankingCurve)> = kiln_train::metrics::ranked_classes(classes.len())
            .map(|c| (c, RankingCurve::one_vs_rest(probabilities, labels, c)))
            .collect();
        let one_vs_rest = if classes.len() == 2 {
            format!("the positive class `{}`", classes[1])
        } else {
            "each class against the rest".to_owned()
        };
        self.section(
            "roc",
            "ROC curves",
            &format!("Test rows, {}.", escape(&one_vs_rest)),
        );
        let roc_lines: Vec<Line> = curves
            .iter()
            .filter_map(|(c, curve)| {
                Some(Line {
                    name: format!("{} (AUC {:.3})", classes[*c], curve.roc_auc()?),
                    points: curve.roc()?,
                    color: color(*c),
                    markers: false,
                })
            })
            .collect();
        self.curve_or_note(&LineChart {
            title: "ROC",
            x_desc: "false positive rate",
            y_desc: "true positive rate",
            size: (480, 420),
            lines: roc_lines,
            references: vec![vec![(0.0, 0.0), (1.0, 1.0)]],
            axes: Axes::Unit,
            legend: Some(SeriesLabelPosition::LowerRight),
        })?;

        self.section(
            "precision-recall",
            "Precision-recall curves",
            &format!(
                "Test rows, {}; the average precision is the area under each step curve.",
                escape(&one_vs_rest)
            ),
        );
        let pr_lines: Vec<Line> = curves
            .iter()
            .filter_map(|(c, curve)| {
                let points = curve.precision_recall()?;
                // Precision Pₖ holds from recall Rₖ₋₁ to Rₖ.
                let mut steps = Vec::with_capacity(2 * points.len());
                let mut recall = 0.0;
                for (r, p) in points {
                    steps.push((recall, p));
                    steps.push((r, p));
                    recall = r;
                }
                Some(Line {
                    name: format!("{} (AP {:.3})", classes[*c], curve.average_precision()?),
                    points: steps,
                    color: color(*c),
                    markers: false,
                })
            })
            .collect();
        self.curve_or_note(&LineChart {
            title: "precision-recall",
            x_desc: "recall",
            y_desc: "precision",
            size: (480, 420),
            lines: pr_lines,
            references: Vec::new(),
            axes: Axes::Unit,
            legend: Some(SeriesLabelPosition::LowerLeft),
        })
    }

    fn curve_or_note(&mut self, chart: &LineChart<'_>) -> Result<()> {
        if chart.lines.is_empty() {
            self.note("Undefined: the test rows do not hold both classes of any curve.");
            Ok(())
        } else {
            let svg = line_chart(chart)?;
            self.charts(&[svg]);
            Ok(())
        }
    }

    fn calibration(&mut self, probabilities: &kiln_core::Matrix, labels: &[i64]) -> Result<()> {
        let ece = kiln_train::metrics::classification(probabilities, labels)["ece"];
        self.section(
            "calibration",
            "Calibration",
            &format!(
                "Reliability of the predicted class's probability on the test rows, in the 15 \
                 bins of the expected calibration error (ECE {ece:.4}); bars are each bin's \
                 share of the rows."
            ),
        );
        let bins = kiln_train::metrics::reliability(probabilities, labels);
        let svg = calibration_chart(&bins, probabilities.rows)?;
        self.charts(&[svg]);
        Ok(())
    }

    fn regression(&mut self, predicted: &[f64], actual: &[f64]) -> Result<()> {
        let pairs: Vec<(f64, f64)> = actual
            .iter()
            .copied()
            .zip(predicted.iter().copied())
            .collect();
        self.section(
            "predicted-vs-actual",
            "Predicted vs actual",
            "Test rows; the dashed line is a perfect prediction.",
        );
        let finite = |v: &(f64, f64)| v.0.is_finite() && v.1.is_finite();
        let span = range_of(pairs.iter().flat_map(|&(a, p)| [a, p]));
        let svg = scatter_chart(&Scatter {
            title: "predicted vs actual",
            x_desc: "actual",
            y_desc: "predicted",
            points: pairs.iter().copied().filter(finite).collect(),
            reference: vec![(span.start, span.start), (span.end, span.end)],
            x_range: Some(span.clone()),
            y_range: Some(span),
        })?;
        self.charts(&[svg]);
        self.section(
            "residuals",
            "Residuals",
            "Test rows: actual minus predicted against the prediction; the dashed line is zero.",
        );
        let residuals: Vec<(f64, f64)> = pairs
            .iter()
            .map(|&(a, p)| (p, a - p))
            .filter(finite)
            .collect();
        let x = range_of(residuals.iter().map(|r| r.0));
        let svg = scatter_chart(&Scatter {
            title: "residuals",
            x_desc: "predicted",
            y_desc: "actual − predicted",
            reference: vec![(x.start, 0.0), (x.end, 0.0)],
            points: residuals,
            x_range: Some(x),
            y_range: None,
        })?;
        self.charts(&[svg]);
        Ok(())
    }

    fn importance(&mut self, metric: &str, baseline: f64, importance: &[Importance]) -> Result<()> {
        self.section(
            "importance",
            "Permutation feature importance",
            &format!(
                "The drop of test {metric} (baseline {baseline:.4}) when one feature column's \
                 test values are shuffled; mean and standard deviation of {IMPORTANCE_REPEATS} \
                 seeded shuffles."
            ),
        );
        if importance.is_empty() {
            self.note("The model has no feature columns.");
            return Ok(());
        }
        let svg = importance_chart(metric, importance)?;
        self.charts(&[svg]);
        let _ = writeln!(
            self.body,
            "<table class=\"numbers\">\n<tr><th>feature</th><th>{metric} drop</th><th>std</th></tr>"
        );
        for i in importance {
            let _ = writeln!(
                self.body,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(&i.feature),
                i.drop,
                i.std
            );
        }
        self.body.push_str("</table>\n");
        Ok(())
    }

    fn feature_stats(&mut self, stats: &DatasetStats, m: &Manifest) -> Result<()> {
        self.section(
            "feature-stats",
            "Feature statistics",
            &format!(
                "The {} training rows (stats.json). Quantiles are approximate (within 1%).",
                stats.rows
            ),
        );
        self.body.push_str(
            "<table class=\"stats\">\n<tr><th>column</th><th>role</th><th>type</th><th>count</th>\
             <th>missing</th><th>mean</th><th>std</th><th>min</th><th>median</th><th>max</th>\
             <th>distribution</th></tr>\n",
        );
        for column in &stats.columns {
            let _ = write!(
                self.body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                escape(&column.name),
                m.schema
                    .column(&column.name)
                    .map_or("", |c| c.role.as_str()),
                column.column_type.as_str(),
                column.count,
                column.missing
            );
            match &column.summary {
                Summary::Numeric(n) => {
                    let median = n
                        .quantiles
                        .iter()
                        .find(|q| (q.q - 0.5).abs() < 1e-9)
                        .map(|q| q.value);
                    let (min, max) = match (&n.min_time, &n.max_time) {
                        (Some(lo), Some(hi)) => (escape(lo), escape(hi)),
                        _ => (number(n.min), number(n.max)),
                    };
                    let _ = write!(
                        self.body,
                        "<td>{}</td><td>{}</td><td>{min}</td><td>{}</td><td>{max}</td>",
                        number(n.mean),
                        number(n.std),
                        number(median)
                    );
                    let counts: Vec<u64> = n.histogram.counts.clone();
                    let spark = sparkline(&column.name, &counts)?;
                    let _ = writeln!(self.body, "<td>{spark}</td></tr>");
                }
                Summary::Categorical(c) => {
                    let top: Vec<String> = c
                        .top
                        .iter()
                        .take(4)
                        .map(|v| format!("{} {}", escape(&v.value), v.count))
                        .collect();
                    let more = if c.distinct > top.len() { ", …" } else { "" };
                    let _ = write!(
                        self.body,
                        "<td colspan=\"5\" class=\"text\">{} distinct{}: {}{more}</td>",
                        c.distinct,
                        if c.capped { " or more" } else { "" },
                        top.join(", ")
                    );
                    let counts: Vec<u64> = c.top.iter().map(|v| v.count as u64).collect();
                    let spark = sparkline(&column.name, &counts)?;
                    let _ = writeln!(self.body, "<td>{spark}</td></tr>");
                }
            }
        }
        self.body.push_str("</table>\n");
        Ok(())
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 24px;z-index:1}\
nav a{color:#1f77b4;text-decoration:none}\
main{max-width:1240px;margin:0 auto;padding:8px 24px 48px}\
h1{margin:16px 0 8px}h2{margin:28px 0 8px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;background:#fff;margin:8px 0}\
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:middle}\
table.numbers td+td,table.stats td:nth-child(n+4){text-align:right;font-variant-numeric:tabular-nums}\
table.stats td.text{text-align:left}\
table.facts th{background:#f3f3f3;font-weight:600}\
.charts{display:flex;flex-wrap:wrap;gap:12px}\
figure{margin:0;background:#fff;border:1px solid #e3e3e3}\
figure svg,td svg{display:block}\
.note{color:#666;font-style:italic}";

/// HTML-escapes text (element content and attribute values).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short, readable number: four significant digits, scientific past 1e6 or below 1e-4.
fn number(value: Option<f64>) -> String {
    match value {
        None => String::new(),
        Some(0.0) => "0".to_owned(),
        Some(v) if !(1e-4..1e6).contains(&v.abs()) => format!("{v:.3e}"),
        Some(v) => {
            // |v| is in [1e-4, 1e6): the exponent is in [-4, 5], so this fits in a usize.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let decimals = (3 - v.abs().log10().floor() as i32).max(0) as usize;
            format!("{v:.decimals$}")
        }
    }
}

/// A tick label: at most 6 decimals, without trailing zeros (`6000`, not `6000.0`).
#[allow(clippy::trivially_copy_pass_by_ref)] // plotters' label formatters take a reference.
fn tick(value: &f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// A series of a line chart.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    /// Draw a dot at each point (a single point draws no line).
    markers: bool,
}

struct LineChart<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    size: (u32, u32),
    lines: Vec<Line>,
    /// Dashed grey guide lines (diagonals, the best epoch); a vertical one is two points with
    /// the same x and infinite y, clipped to the chart.
    references: Vec<Vec<(f64, f64)>>,
    axes: Axes,
    /// Where the legend goes; none for a single unnamed line.
    legend: Option<SeriesLabelPosition>,
}

enum Axes {
    /// Epochs across, the values' span up.
    Epochs,
    /// Both axes span [0, 1] (rates, probabilities).
    Unit,
}

/// A vertical reference line at `x`.
fn vertical(x: f64) -> Vec<(f64, f64)> {
    vec![(x, f64::NEG_INFINITY), (x, f64::INFINITY)]
}

/// The span of the finite `values`, padded by 5% (±0.5 around a single value; 0..1 when
/// there are none).
fn range_of(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        0.0..1.0
    } else if hi - lo < 1e-12 * lo.abs().max(1.0) {
        lo - 0.5..hi + 0.5
    } else {
        let pad = (hi - lo) * 0.05;
        lo - pad..hi + pad
    }
}

/// Runs `draw` on a fresh SVG canvas of `size` and returns the SVG text.
fn svg(
    chart: &str,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| Error::Chart {
                chart: chart.to_owned(),
                message: e.to_string(),
            })?;
    }
    Ok(text)
}

fn line_chart(c: &LineChart<'_>) -> Result<String> {
    let (x_range, y_range) = match c.axes {
        Axes::Unit => (-0.02..1.02, -0.02..1.02),
        Axes::Epochs => {
            let points = || c.lines.iter().flat_map(|l| l.points.iter());
            let mut x = range_of(points().map(|p| p.0));
            // At least one epoch wide, so a single epoch gets an axis around it.
            if x.end - x.start < 1.0 {
                x = x.start - 0.5..x.end + 0.5;
            }
            (x, range_of(points().map(|p| p.1)))
        }
    };
    // Epoch ticks on whole numbers only.
    let epoch_label = |v: &f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    svg(c.title, c.size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(c.title, (FONT, CAPTION))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        let mut mesh = chart.configure_mesh();
        mesh.max_light_lines(1)
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .x_labels(6)
            .y_labels(6)
            .x_desc(c.x_desc)
            .y_desc(c.y_desc)
            .y_label_formatter(&tick)
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC));
        match c.axes {
            Axes::Epochs => mesh.x_label_formatter(&epoch_label),
            Axes::Unit => mesh.x_label_formatter(&tick),
        };
        mesh.draw()?;
        for reference in &c.references {
            // Clip infinite ends (vertical guides) to the chart.
            let clipped: Vec<(f64, f64)> = reference
                .iter()
                .map(|&(x, y)| (x, y.clamp(y_range.start, y_range.end)))
                .collect();
            chart.draw_series(DashedLineSeries::new(
                clipped,
                6,
                4,
                REFERENCE.stroke_width(1),
            ))?;
        }
        for line in &c.lines {
            let style = line.color.stroke_width(2);
            let series = chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
            if c.legend.is_some() {
                let color = line.color;
                series.label(line.name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
            if line.markers {
                chart.draw_series(
                    line.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, line.color.filled())),
                )?;
            }
        }
        if let Some(position) = &c.legend {
            chart
                .configure_series_labels()
                .position(position.clone())
                .background_style(WHITE.mix(0.85))
                .border_style(GRID)
                .label_font((FONT, LABEL))
                .draw()?;
        }
        Ok(())
    })
}

struct Scatter<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    points: Vec<(f64, f64)>,
    reference: Vec<(f64, f64)>,
    x_range: Option<Range<f64>>,
    y_range: Option<Range<f64>>,
}

fn scatter_chart(s: &Scatter<'_>) -> Result<String> {
    let x_range = s
        .x_range
        .clone()
        .unwrap_or_else(|| range_of(s.points.iter().map(|p| p.0)));
    let y_range = s
        .y_range
        .clone()
        .unwrap_or_else(|| range_of(s.points.iter().map(|p| p.1).chain([0.0])));
    svg(s.title, (480, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(s.title, (FONT, CAPTION))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range, y_range)?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .x_labels(6)
            .y_labels(6)
            .x_desc(s.x_desc)
            .y_desc(s.y_desc)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(
            s.reference.clone(),
            6,
            4,
            REFERENCE.stroke_width(1),
        ))?;
        chart.draw_series(
            s.points
                .iter()
                .map(|&p| Circle::new(p, 3, color(0).mix(0.6).filled())),
        )?;
        Ok(())
    })
}

/// Longest class name on the confusion matrix's axes, and feature name on the importance
/// chart's.
const CLASS_LABEL: usize = 16;
const FEATURE_LABEL: usize = 28;

/// A name cut to `max` characters, to fit an axis label.
fn short(name: &str, max: usize) -> String {
    if name.chars().count() > max {
        format!("{}…", name.chars().take(max - 1).collect::<String>())
    } else {
        name.to_owned()
    }
}

/// Room for the longest of `labels` beside an axis, in pixels (about 7 per character at
/// [`LABEL`] size).
fn label_width(labels: impl Iterator<Item = String>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0);
    u32::try_from(longest * 7 + 20).unwrap_or(u32::MAX).min(240)
}

/// An axis over `n` categories: category `i` is centred on `i` (key points land on the
/// integers), so labels and cells line up without plotters' segmented coordinates, which
/// need two or more categories.
fn category_axis(n: usize) -> Range<f64> {
    #[allow(clippy::cast_precision_loss)] // Category counts are small.
    let n = n as f64;
    -0.5..n - 0.5
}

/// The label of key point `value` of a [`category_axis`]: `label(i)` on integer `i`.
fn category_label(value: f64, n: usize, label: impl Fn(usize) -> String) -> String {
    let rounded = value.round();
    if (value - rounded).abs() > 1e-6 || rounded < 0.0 {
        return String::new();
    }
    // A non-negative whole number below the category count.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = rounded as usize;
    if i < n { label(i) } else { String::new() }
}

#[allow(clippy::cast_precision_loss)] // Category indices are small.
fn confusion_chart(classes: &[String], matrix: &[Vec<usize>]) -> Result<String> {
    let k = classes.len();
    let cell = u32::try_from(420 / k.max(1)).unwrap_or(1).clamp(14, 80);
    let side = cell * u32::try_from(k).unwrap_or(200).min(200);
    let label_width = label_width(classes.iter().map(|c| short(c, CLASS_LABEL)));
    let size = (side + label_width + 40, side + 110);
    svg("confusion matrix", size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("confusion matrix (test)", (FONT, CAPTION))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(label_width)
            .build_cartesian_2d(category_axis(k), category_axis(k))?;
        // Row 0 (the first true class) at the top.
        let x_label = |v: &f64| category_label(*v, k, |i| short(&classes[i], CLASS_LABEL));
        let y_label = |v: &f64| category_label(*v, k, |i| short(&classes[k - 1 - i], CLASS_LABEL));
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k + 1)
            .y_labels(k + 1)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("predicted")
            .y_desc("true")
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC))
            .draw()?;
        let font_size = f64::from(cell.min(40)) * 0.4;
        for (t, row) in matrix.iter().enumerate() {
            let total: usize = row.iter().sum();
            for (p, &count) in row.iter().enumerate() {
                let share = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                let (x, y) = (p as f64, (k - 1 - t) as f64);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                    shade(share).filled(),
                )))?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                chart.draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (x, y),
                    (FONT, font_size)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
        }
        Ok(())
    })
}

/// White to dark blue as `share` goes from 0 to 1.
fn shade(share: f64) -> RGBColor {
    let mix = |light: f64, dark: f64| {
        // The result lies between two bytes.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let channel = (dark - light).mul_add(share.clamp(0.0, 1.0), light).round() as u8;
        channel
    };
    RGBColor(mix(247.0, 8.0), mix(251.0, 69.0), mix(255.0, 148.0))
}

fn calibration_chart(bins: &[ReliabilityBin], rows: usize) -> Result<String> {
    svg("calibration", (480, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("reliability (test)", (FONT, CAPTION))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.02)?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .x_labels(6)
            .y_labels(6)
            .x_desc("confidence (predicted class probability)")
            .y_desc("accuracy")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC))
            .draw()?;
        #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
        let rows = rows.max(1) as f64;
        chart
            .draw_series(bins.iter().map(|b| {
                #[allow(clippy::cast_precision_loss)] // Row counts are far below 2^52.
                let share = b.rows as f64 / rows;
                Rectangle::new(
                    [(b.lower, 0.0), (b.upper, share)],
                    RGBColor(200, 200, 200).mix(0.6).filled(),
                )
            }))?
            .label("share of rows")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 18, y + 5)],
                    RGBColor(200, 200, 200).filled(),
                )
            });
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                REFERENCE.stroke_width(1),
            ))?
            .label("perfectly calibrated")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], REFERENCE.stroke_width(1))
            });
        let points: Vec<(f64, f64)> = bins.iter().map(|b| (b.confidence, b.accuracy)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color(0).stroke_width(2)))?
            .label("accuracy per bin")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color(0).stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color(0).filled())))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GRID)
            .label_font((FONT, LABEL))
            .draw()?;
        Ok(())
    })
}

#[allow(clippy::cast_precision_loss)] // Feature counts are small.
fn importance_chart(metric: &str, importance: &[Importance]) -> Result<String> {
    let n = importance.len();
    let label_width = label_width(importance.iter().map(|i| short(&i.feature, FEATURE_LABEL)));
    let height = u32::try_from(n * 26).unwrap_or(2000).min(2000) + 90;
    let x = range_of(
        importance
            .iter()
            .flat_map(|i| [i.drop - i.std, i.drop + i.std, 0.0]),
    );
    let title = format!("{metric} drop when shuffled");
    svg("importance", (640, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&title, (FONT, CAPTION))
            .margin(10)
            .margin_right(28)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d(x.clone(), category_axis(n))?;
        // The largest drop on top.
        let y_label = |v: &f64| {
            category_label(*v, n, |i| {
                short(&importance[n - 1 - i].feature, FEATURE_LABEL)
            })
        };
        chart
            .configure_mesh()
            .max_light_lines(1)
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .disable_y_mesh()
            .y_labels(n + 1)
            .x_labels(6)
            .y_label_formatter(&y_label)
            .x_desc(format!("{metric} drop"))
            .x_label_formatter(&tick)
            .label_style((FONT, LABEL))
            .axis_desc_style((FONT, DESC))
            .draw()?;
        for (rank, i) in importance.iter().enumerate() {
            let y = (n - 1 - rank) as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.35), (i.drop, y + 0.35)],
                color(0).mix(0.8).filled(),
            )))?;
            if i.std > 0.0 {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(i.drop - i.std, y), (i.drop + i.std, y)],
                    BLACK.stroke_width(1),
                )))?;
            }
        }
        Ok(())
    })
}

/// A small bar chart of `counts` (a histogram, or the most frequent values), without axes.
fn sparkline(column: &str, counts: &[u64]) -> Result<String> {
    let most = counts.iter().copied().max().unwrap_or(0).max(1);
    svg(&format!("distribution of {column}"), (140, 32), |root| {
        #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
        let mut chart = ChartBuilder::on(root)
            .margin(2)
            .build_cartesian_2d(0.0..counts.len().max(1) as f64, 0.0..most as f64)?;
        #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            Rectangle::new(
                [(i as f64 + 0.08, 0.0), (i as f64 + 0.92, c as f64)],
                color(0).filled(),
            )
        }))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ticks_are_short() {
        assert_eq!(number(Some(44.1)), "44.10");
        assert_eq!(number(Some(5.40712)), "5.407");
        assert_eq!(number(Some(4207.3)), "4207");
        assert_eq!(number(Some(0.0)), "0");
        assert_eq!(number(Some(1.5e7)), "1.500e7");
        assert_eq!(number(None), "");
        assert_eq!(tick(&6000.0), "6000");
        assert_eq!(tick(&(0.1 + 0.2)), "0.3");
        assert_eq!(tick(&-0.0), "0");
        assert_eq!(tick(&-500.0), "-500");
    }

    #[test]
    fn ranges_pad_and_survive_degenerate_input() {
        let r = range_of([1.0, 3.0, f64::NAN, f64::INFINITY].into_iter());
        assert!(
            (r.start - 0.9).abs() < 1e-12 && (r.end - 3.1).abs() < 1e-12,
            "{r:?}"
        );
        assert_eq!(range_of([2.0, 2.0].into_iter()), 1.5..2.5);
        assert_eq!(range_of(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn category_labels_sit_on_whole_numbers_in_range() {
        let label = |v| category_label(v, 3, |i| format!("c{i}"));
        assert_eq!(label(0.0), "c0");
        assert_eq!(label(2.0), "c2");
        assert_eq!(label(0.5), "");
        assert_eq!(label(3.0), "");
        assert_eq!(label(-1.0), "");
        assert_eq!(short("flipper_length_mm", 8), "flipper…");
        assert_eq!(short("sex", 8), "sex");
    }
}
