//! `kiln serve` and `kiln drift`.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_core::BackendKind;
use kiln_pipeline::{AnyPredictor, DriftReport};

/// Serves `bundle` until SIGTERM/SIGINT.
pub(crate) fn serve(bundle: PathBuf, options: kiln_serve::ServeOptions) -> kiln_serve::Result<()> {
    kiln_serve::serve(bundle, options.check()?)
}

/// Compares `data` with the bundle's training statistics; [`kiln_pipeline::Error::Drift`]
/// (exit code 1) when a feature drifted.
pub(crate) fn drift(
    bundle: &Path,
    data: &Path,
    json: bool,
    html: Option<&Path>,
) -> kiln_pipeline::Result<()> {
    // Reading needs only the spec, which every backend loads the same way.
    let predictor = AnyPredictor::load(bundle, BackendKind::Ndarray)?;
    let stats = predictor.training_stats()?;
    let table = predictor.read(data)?;
    let report = kiln_pipeline::drift_report(predictor.spec(), &stats, &table);
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(
            stdout,
            "{:#}",
            serde_json::to_value(&report).expect("reports serialize")
        )?;
    } else {
        print_table(&mut stdout, &report)?;
    }
    if let Some(path) = html {
        let page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kiln drift</title>\n<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:right}} td:first-child{{text-align:left}} tr.drifted{{background:#fdd}}</style></head><body>\n{}</body></html>\n",
            report.html_section()
        );
        kiln_core::fsx::write_atomic(path, page.as_bytes())?;
    }
    let drifted: Vec<String> = report
        .features
        .iter()
        .filter(|f| f.drifted)
        .map(|f| f.column.clone())
        .collect();
    if drifted.is_empty() {
        Ok(())
    } else {
        Err(kiln_pipeline::Error::Drift { features: drifted })
    }
}

fn print_table(out: &mut impl Write, report: &DriftReport) -> std::io::Result<()> {
    let t = &report.thresholds;
    writeln!(
        out,
        "{} rows; drift when PSI > {}, KS > {} or chi-square p < {}",
        report.rows, t.psi, t.ks, t.chi2_p_value
    )?;
    writeln!(
        out,
        "{:<24} {:<12} {:>8} {:>8} {:>8} {:>10} {:>10}  drift",
        "feature", "kind", "rows", "PSI", "KS", "chi2", "p"
    )?;
    let opt = |v: Option<f64>, width: usize| {
        v.map_or_else(|| format!("{:>width$}", "-"), |v| format!("{v:>width$.4}"))
    };
    for f in &report.features {
        writeln!(
            out,
            "{:<24} {:<12} {:>8} {:>8.4} {} {} {}  {}",
            f.column,
            f.kind,
            f.rows,
            f.psi,
            opt(f.ks, 8),
            opt(f.chi2, 10),
            opt(f.chi2_p_value, 10),
            if f.drifted { "YES" } else { "no" }
        )?;
    }
    Ok(())
}
