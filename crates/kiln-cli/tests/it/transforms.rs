//! Feature transforms through the whole pipeline: real data, `kiln inspect`, bad overrides.

use std::path::{Path, PathBuf};

use crate::{kiln, penguins_pipeline, scratch, stderr, train};

fn examples(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path)
}

#[test]
fn diamonds_price_with_ordinal_grades_reaches_r2_097() {
    let out = scratch();
    let (run, manifest) = train(
        &examples("diamonds/pipeline.toml"),
        out.path(),
        &["--backend", "flex"],
    );
    let r2 = manifest["metrics"]["test"]["r2"].as_f64().unwrap();
    assert!(r2 >= 0.97, "diamonds test R² {r2}");

    let inspect = kiln(&["inspect", run.join("bundle").to_str().unwrap()]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let text = String::from_utf8(inspect.stdout).unwrap();
    let line = |column: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{column} ")))
            .unwrap_or_else(|| panic!("no `{column}` line in\n{text}"))
            .to_owned()
    };
    assert!(
        line("cut").contains("ordinal [Fair, Good, Very Good, Premium, Ideal]"),
        "{text}"
    );
    assert!(line("carat").contains("log1p"), "{text}");
    assert!(text.contains("target `price`: regression"), "{text}");
}

/// `[features]` of the example pipeline, which each test replaces with its own.
const EXAMPLE_FEATURES: &str = "[features]\nnumeric = { impute = \"median\", scale = \"standard\" }\ncategorical = { min_frequency = 1 }\n";

/// The example pipeline with `features` in place of its `[features]`, written to `out`.
fn penguins_with(features: &str, out: &Path) -> PathBuf {
    penguins_pipeline(out, &[(EXAMPLE_FEATURES, features)])
}

#[test]
fn per_column_overrides_reach_the_bundle() {
    let out = scratch();
    let pipeline = penguins_with(
        "[features]\nnumeric = { scale = \"robust\" }\n[features.columns]\n\
         island = { encode = \"target\" }\nbill_length_mm = { power = true, missing_indicator = true }\n",
        out.path(),
    );
    let (run, manifest) = train(&pipeline, out.path(), &[]);
    assert!(manifest["metrics"]["test"]["accuracy"].as_f64().unwrap() >= 0.9);
    let inspect = kiln(&["inspect", run.join("bundle").to_str().unwrap(), "--json"]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let columns = json["features"]["columns"].as_array().unwrap();
    let column = |name: &str| columns.iter().find(|c| c["name"] == name).unwrap();
    // Three species: one target-mean output per class.
    assert_eq!(column("island")["encoding"]["encode"], "target");
    assert_eq!(
        column("island")["encoding"]["prior"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(column("bill_length_mm")["power"].as_f64().is_some());
    assert_eq!(column("bill_length_mm")["missing_indicator"], true);
    // Robust scaling: the center is the train median, not the mean.
    let depth = column("bill_depth_mm");
    assert_eq!(
        depth["center"], depth["fill"],
        "median imputation and robust center agree"
    );
}

#[test]
fn overrides_that_do_not_fit_are_refused_before_training() {
    let out = scratch();
    for (features, expected) in [
        (
            "[features.columns]\nwingspan = { log1p = true }\n",
            "features.columns.wingspan: `wingspan` is not a feature column",
        ),
        (
            "[features.columns]\nbill_length_mm = { order = [\"a\"] }\n",
            "features.columns.bill_length_mm: unknown field `order`",
        ),
        (
            "[features.columns]\nisland = { encode = \"ordinal\", order = [\"Biscoe\", \"Dream\"] }\n",
            "column `island`: `Torgersen` is not in features.columns.island.order",
        ),
    ] {
        let pipeline = penguins_with(features, out.path());
        let output = kiln(&[
            "train",
            pipeline.to_str().unwrap(),
            "--out",
            out.path().join("runs").to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
        assert!(
            !out.path().join("runs").exists()
                || crate::visible_entries(&out.path().join("runs")).is_empty()
        );
    }
}
