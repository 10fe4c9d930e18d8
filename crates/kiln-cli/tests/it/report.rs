//! `kiln report`: one self-contained HTML page per run, its SVG charts well-formed and drawn.

use std::path::Path;

use serde_json::Value;

use crate::{example, kiln, penguins_pipeline, scratch, stderr, train};

/// SVG elements that draw something.
const DRAWN: [&str; 6] = ["path", "polyline", "polygon", "rect", "circle", "text"];

/// `kiln report RUN EXTRA..`; returns the page after checking it names the file it wrote.
fn report(run: &Path, extra: &[&str], written: &Path) -> String {
    let mut args = vec!["report", run.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = kiln(&args);
    assert!(output.status.success(), "kiln report: {}", stderr(&output));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        written.display().to_string()
    );
    fs_err::read_to_string(written).unwrap()
}

/// The HTML of `<section id="ID">`, panicking when the page lacks it.
fn section<'a>(html: &'a str, id: &str) -> &'a str {
    let open = format!("<section id=\"{id}\">");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("the report has a `{id}` section"));
    let end = html[start..].find("</section>").expect("sections close") + start;
    &html[start..end]
}

/// Every `<svg>…</svg>` in `html`, each checked to be well-formed XML that draws something
/// besides its background; returns their texts.
fn svgs(html: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<svg") {
        let end = rest[start..].find("</svg>").expect("every <svg> closes") + start + 6;
        let svg = &rest[start..end];
        let doc = roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("SVG is not well-formed XML: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let drawn = doc
            .descendants()
            .filter(|n| DRAWN.contains(&n.tag_name().name()))
            .count();
        // The white background is one rect; a chart draws more.
        assert!(drawn > 1, "an SVG draws nothing but its background:\n{svg}");
        found.push(svg);
        rest = &rest[end..];
    }
    found
}

/// The texts of an SVG's `<text>` elements, trimmed.
fn texts(svg: &str) -> Vec<String> {
    roxmltree::Document::parse(svg)
        .unwrap()
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
        .collect()
}

/// A page that loads nothing: no external URL (the SVG namespace names one, loads nothing),
/// no scripts, stylesheets or images from elsewhere.
fn assert_self_contained(html: &str) {
    let without_namespace = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_namespace.contains("http"), "an external URL");
    for tag in ["<script", "<link", "<img", "<iframe", "src="] {
        assert!(!html.contains(tag), "the page has {tag}");
    }
}

fn test_rows(manifest: &Value) -> usize {
    usize::try_from(manifest["splits"]["test"]["rows"].as_u64().unwrap()).unwrap()
}

#[test]
fn classification_report_has_every_chart_and_needs_the_data() {
    let dir = scratch();
    // The data in the scratch directory, so the test can take it away afterwards.
    let data = dir.path().join("penguins.csv");
    fs_err::copy(example("penguins.csv"), &data).unwrap();
    let source = format!("source = {:?}", example("penguins.csv").to_str().unwrap());
    let pipeline = penguins_pipeline(
        dir.path(),
        &[
            ("epochs = 40", "epochs = 6"),
            (&source, &format!("source = {:?}", data.to_str().unwrap())),
        ],
    );
    let (run, manifest) = train(&pipeline, &dir.path().join("runs"), &[]);
    let html = report(&run, &[], &run.join("report.html"));
    assert_self_contained(&html);
    let all = svgs(&html);
    assert!(all.len() >= 10, "{} charts", all.len());
    let name = run.file_name().unwrap().to_str().unwrap();
    assert!(html.contains(&format!("<h1>{name}</h1>")));
    assert!(html.contains(manifest["data_hash"]["blake3"].as_str().unwrap()));

    // Learning curves: the loss chart, then one per recorded validation metric.
    let curves = section(&html, "learning-curves");
    let loss = svgs(curves)[0];
    assert!(texts(loss).contains(&"train loss".to_owned()));
    assert!(texts(loss).contains(&"valid loss".to_owned()));
    assert!(svgs(curves).len() > 2);
    assert!(
        texts(
            svgs(curves)[1..]
                .iter()
                .find(|s| s.contains("valid accuracy"))
                .unwrap()
        )
        .contains(&"valid accuracy".to_owned())
    );

    // Final metrics: the manifest's test accuracy, to four places.
    let metrics = section(&html, "metrics");
    let accuracy = manifest["metrics"]["test"]["accuracy"].as_f64().unwrap();
    assert!(metrics.contains(&format!("{accuracy:.4}")), "{metrics}");

    // The confusion matrix's cells count the test rows, its axes name the classes.
    let confusion = svgs(section(&html, "confusion-matrix"));
    assert_eq!(confusion.len(), 1);
    let cells = texts(confusion[0]);
    let counted: usize = cells.iter().filter_map(|t| t.parse::<usize>().ok()).sum();
    assert_eq!(counted, test_rows(&manifest));
    let matrix = &manifest["confusion"]["test"];
    assert_eq!(
        cells.iter().filter(|t| t.parse::<usize>().is_ok()).count(),
        9,
        "{matrix}"
    );
    for class in ["Adelie", "Chinstrap", "Gentoo"] {
        assert!(cells.contains(&class.to_owned()), "{cells:?}");
    }

    // One-vs-rest ROC and PR curves, one legend entry per class with its area.
    let roc = texts(svgs(section(&html, "roc"))[0]);
    let pr = texts(svgs(section(&html, "precision-recall"))[0]);
    for class in ["Adelie", "Chinstrap", "Gentoo"] {
        assert!(
            roc.iter().any(|t| t.starts_with(&format!("{class} (AUC "))),
            "{roc:?}"
        );
        assert!(
            pr.iter().any(|t| t.starts_with(&format!("{class} (AP "))),
            "{pr:?}"
        );
    }
    let calibration = section(&html, "calibration");
    assert!(texts(svgs(calibration)[0]).contains(&"accuracy per bin".to_owned()));
    let ece = manifest["metrics"]["test"]["ece"].as_f64().unwrap();
    assert!(calibration.contains(&format!("ECE {ece:.4}")));
    assert!(!html.contains("id=\"residuals\""));

    // Importance: a bar per feature column, and the table names each one.
    let importance = section(&html, "importance");
    assert_eq!(svgs(importance).len(), 1);
    let features = [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ];
    for feature in features {
        assert!(
            importance.contains(&format!("<tr><td>{feature}</td>")),
            "{feature}"
        );
    }
    // Feature statistics: a row per column of stats.json, with its distribution.
    let stats = section(&html, "feature-stats");
    assert_eq!(svgs(stats).len(), features.len() + 1);
    assert!(stats.contains("<tr><td>species</td><td>target</td><td>categorical</td>"));

    // Seeded: another report of the run is the same page.
    let other = dir.path().join("again.html");
    assert_eq!(report(&run, &["-o", other.to_str().unwrap()], &other), html);

    // Without its data, the run cannot be reported: the error names the file.
    fs_err::remove_file(&data).unwrap();
    let output = kiln(&["report", run.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(data.to_str().unwrap()) && err.contains("test-split charts"),
        "{err}"
    );
}

#[test]
fn regression_report_has_residuals() {
    let dir = scratch();
    let data = example("penguins.csv");
    let text = fs_err::read_to_string(example("regression.toml"))
        .unwrap()
        .replace(
            "source = \"penguins.csv\"",
            &format!("source = {:?}", data.to_str().unwrap()),
        )
        .replace("epochs = 200", "epochs = 8");
    let pipeline = dir.path().join("regression.toml");
    fs_err::write(&pipeline, text).unwrap();
    let (run, manifest) = train(&pipeline, &dir.path().join("runs"), &[]);
    let out = dir.path().join("report.html");
    let html = report(&run, &["-o", out.to_str().unwrap()], &out);
    assert!(!run.join("report.html").exists());
    assert_self_contained(&html);
    svgs(&html);

    // A dot per test row in both scatter plots.
    for id in ["predicted-vs-actual", "residuals"] {
        let charts = svgs(section(&html, id));
        assert_eq!(charts.len(), 1);
        assert_eq!(
            charts[0].matches("<circle").count(),
            test_rows(&manifest),
            "{id}"
        );
    }
    let curves = svgs(section(&html, "learning-curves"));
    assert!(texts(curves[1]).contains(&"valid r2".to_owned()));
    assert!(section(&html, "importance").contains("r2 drop"));
    section(&html, "feature-stats");
    for id in ["confusion-matrix", "roc", "precision-recall", "calibration"] {
        assert!(!html.contains(&format!("id=\"{id}\"")), "{id}");
    }
}

#[test]
fn report_refuses_a_directory_that_is_not_a_run() {
    let dir = scratch();
    let output = kiln(&["report", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{}: not a finished kiln run (no manifest.json)",
            dir.path().display()
        )),
        "{err}"
    );
}
