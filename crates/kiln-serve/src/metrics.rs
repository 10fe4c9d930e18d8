//! Prometheus text metrics, kept by hand: a few counters and histograms need no registry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use kiln_pipeline::{DriftReport, Prediction};

/// Latency bucket bounds, in seconds.
const LATENCY_BOUNDS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Batch size bucket bounds, in rows.
const BATCH_BOUNDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// One count per bound, then one for +Inf (not cumulative; summed when written).
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len() + 1];
        }
        let bucket = bounds.partition_point(|&b| b < value);
        self.counts[bucket] += 1;
        self.sum += value;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts.last().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    batches: Histogram,
    classes: BTreeMap<String, u64>,
    reloads: BTreeMap<&'static str, u64>,
}

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub(crate) struct Metrics(Mutex<Inner>);

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        // A poisoned lock still holds valid counts.
        let mut inner = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner);
    }

    pub(crate) fn record_request(&self, route: &'static str, status: u16, latency: Duration) {
        self.with(|m| {
            *m.requests.entry((route, status)).or_default() += 1;
            m.latency
                .entry(route)
                .or_default()
                .observe(&LATENCY_BOUNDS, latency.as_secs_f64());
        });
    }

    pub(crate) fn record_batch(&self, rows: usize, predictions: &[Prediction]) {
        self.with(|m| {
            #[allow(clippy::cast_precision_loss)] // Batch sizes are small.
            m.batches.observe(&BATCH_BOUNDS, rows as f64);
            for p in predictions {
                if let Prediction::Class { class, .. } = p {
                    if let Some(n) = m.classes.get_mut(class) {
                        *n += 1;
                    } else {
                        m.classes.insert(class.clone(), 1);
                    }
                }
            }
        });
    }

    pub(crate) fn record_reload(&self, outcome: &'static str) {
        self.with(|m| *m.reloads.entry(outcome).or_default() += 1);
    }

    /// The Prometheus text exposition, with the current model's drift gauges.
    pub(crate) fn render(&self, model: &str, version: u64, drift: Option<&DriftReport>) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP kiln_requests_total HTTP requests by route and status.\n# TYPE kiln_requests_total counter\n");
            for ((route, status), n) in &m.requests {
                let _ = writeln!(out, "kiln_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
            out.push_str("# HELP kiln_request_duration_seconds Request latency by route.\n# TYPE kiln_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                h.write(&mut out, "kiln_request_duration_seconds", &format!("route=\"{route}\""), &LATENCY_BOUNDS);
            }
            out.push_str("# HELP kiln_batch_rows Rows per model call.\n# TYPE kiln_batch_rows histogram\n");
            m.batches.write(&mut out, "kiln_batch_rows", "", &BATCH_BOUNDS);
            out.push_str("# HELP kiln_predicted_class_total Predictions by class.\n# TYPE kiln_predicted_class_total counter\n");
            for (class, n) in &m.classes {
                let _ = writeln!(out, "kiln_predicted_class_total{{class=\"{}\"}} {n}", label(class));
            }
            out.push_str("# HELP kiln_reloads_total Model reloads by outcome.\n# TYPE kiln_reloads_total counter\n");
            for (outcome, n) in &m.reloads {
                let _ = writeln!(out, "kiln_reloads_total{{outcome=\"{outcome}\"}} {n}");
            }
        });
        let _ = writeln!(
            out,
            "# HELP kiln_model_info The model being served.\n# TYPE kiln_model_info gauge\nkiln_model_info{{id=\"{}\",version=\"{version}\"}} 1",
            label(model)
        );
        if let Some(report) = drift {
            let _ = writeln!(
                out,
                "# HELP kiln_drift_window_rows Recent input rows the drift gauges compare.\n# TYPE kiln_drift_window_rows gauge\nkiln_drift_window_rows {}",
                report.rows
            );
            out.push_str("# HELP kiln_drift_psi Population stability index of recent inputs against the training rows.\n# TYPE kiln_drift_psi gauge\n");
            for f in &report.features {
                let _ = writeln!(
                    out,
                    "kiln_drift_psi{{feature=\"{}\"}} {}",
                    label(&f.column),
                    f.psi
                );
            }
            out.push_str("# HELP kiln_drift_ks Kolmogorov-Smirnov statistic of recent numeric inputs.\n# TYPE kiln_drift_ks gauge\n");
            for f in &report.features {
                if let Some(ks) = f.ks {
                    let _ = writeln!(
                        out,
                        "kiln_drift_ks{{feature=\"{}\"}} {ks}",
                        label(&f.column)
                    );
                }
            }
            out.push_str("# HELP kiln_drift_chi2_p_value Chi-square p-value of recent categorical inputs.\n# TYPE kiln_drift_chi2_p_value gauge\n");
            for f in &report.features {
                if let Some(p) = f.chi2_p_value {
                    let _ = writeln!(
                        out,
                        "kiln_drift_chi2_p_value{{feature=\"{}\"}} {p}",
                        label(&f.column)
                    );
                }
            }
            out.push_str("# HELP kiln_drift_detected 1 when a feature crosses a [drift] threshold.\n# TYPE kiln_drift_detected gauge\n");
            for f in &report.features {
                let _ = writeln!(
                    out,
                    "kiln_drift_detected{{feature=\"{}\"}} {}",
                    label(&f.column),
                    u8::from(f.drifted)
                );
            }
        }
        out
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
