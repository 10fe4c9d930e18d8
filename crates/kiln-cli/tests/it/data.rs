//! The data side of a pipeline: formats, column roles, split kinds, `[validate]`, statistics,
//! and the `kiln validate`, `kiln stats` and `kiln schema` verbs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use serde_json::{Value, json};

use crate::{example, kiln, scratch, stderr, train, train_failure, visible_entries};

/// penguins.csv as a header and rows of cells (`None` for `NA`).
fn penguins() -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|c| (c != "NA").then(|| c.to_owned()))
                .collect()
        })
        .collect();
    (header, rows)
}

/// Whether every present cell of column `i` is a number.
fn numeric(rows: &[Vec<Option<String>>], i: usize) -> bool {
    rows.iter()
        .filter_map(|r| r[i].as_deref())
        .all(|c| c.parse::<f64>().is_ok())
}

/// penguins as JSON Lines, keys in header order: numbers as numbers, `NA` as null.
fn penguins_jsonl() -> String {
    let (header, rows) = penguins();
    let mut text = String::new();
    for row in &rows {
        let fields: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = match row[i].as_deref() {
                    None => Value::Null,
                    Some(c) if numeric(&rows, i) => json!(c.parse::<f64>().unwrap()),
                    Some(c) => json!(c),
                };
                format!("{}:{value}", json!(name))
            })
            .collect();
        writeln!(text, "{{{}}}", fields.join(",")).unwrap();
    }
    text
}

/// penguins as Parquet: numeric columns as float64, the others as strings.
fn penguins_parquet(path: &Path) {
    let (header, rows) = penguins();
    let columns: Vec<(&str, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let array: ArrayRef = if numeric(&rows, i) {
                Arc::new(
                    rows.iter()
                        .map(|r| r[i].as_deref().map(|c| c.parse::<f64>().unwrap()))
                        .collect::<Float64Array>(),
                )
            } else {
                Arc::new(rows.iter().map(|r| r[i].clone()).collect::<StringArray>())
            };
            (name.as_str(), array)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = fs_err::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A small, quick pipeline on `source` (relative to `dir`), with `data` lines added to
/// `[data]` and `rest` (more sections) appended.
fn pipeline(dir: &Path, source: &str, data: &str, rest: &str) -> PathBuf {
    let text = format!(
        "[pipeline]\nname = \"data\"\n[data]\nsource = \"{source}\"\ntarget = \"species\"\n{data}\n\
         [model]\nhidden = [8]\n[train]\nepochs = 3\nlr = 0.02\n{rest}"
    );
    let path = dir.join("pipeline.toml");
    fs_err::write(&path, text).unwrap();
    path
}

fn copy_penguins(dir: &Path) {
    fs_err::copy(example("penguins.csv"), dir.join("penguins.csv")).unwrap();
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The rows of each split in a run's splits.json.
fn splits(run_dir: &Path) -> [Vec<usize>; 3] {
    let splits = json_file(&run_dir.join("splits.json"));
    ["train", "valid", "test"].map(|name| {
        splits[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| usize::try_from(v.as_u64().unwrap()).unwrap())
            .collect()
    })
}

#[test]
fn csv_jsonl_and_parquet_sources_train_to_the_same_run() {
    let dir = scratch();
    copy_penguins(dir.path());
    fs_err::write(dir.path().join("penguins.jsonl"), penguins_jsonl()).unwrap();
    // A name that tells no format: `format = "parquet"` must say it.
    penguins_parquet(&dir.path().join("penguins.data"));
    let mut manifests = Vec::new();
    for (source, format) in [
        ("penguins.csv", ""),
        ("penguins.jsonl", ""),
        ("penguins.data", "format = \"parquet\""),
    ] {
        let config = pipeline(dir.path(), source, format, "");
        let (run_dir, manifest) = train(&config, &dir.path().join("runs"), &[]);
        assert!(run_dir.join("bundle/bundle.json").is_file());
        manifests.push(manifest);
    }
    for m in &manifests[1..] {
        assert_eq!(m["splits"], manifests[0]["splits"], "same rows per split");
        assert_eq!(m["metrics"], manifests[0]["metrics"], "same model");
    }
    // The Parquet-trained bundle reads a file of the same unrecognisable name as Parquet.
    let run_dir = dir.path().join("runs/data-3");
    let out = kiln(&[
        "evaluate",
        run_dir.join("bundle").to_str().unwrap(),
        dir.path().join("penguins.data").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let scored: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(scored["rows"], 344);
}

#[test]
fn csv_options_header_quote_and_comment_are_honoured() {
    let dir = scratch();
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    // No header, `;` delimiter, `'` quotes, `#` comment lines.
    let mut body = String::from("# exported from a lab notebook\n");
    for line in text.lines().skip(1) {
        let line = line.replace(',', ";").replacen("Adelie", "'Adelie'", 1);
        writeln!(body, "{line}").unwrap();
    }
    fs_err::write(dir.path().join("p.txt"), body).unwrap();
    let config = dir.path().join("pipeline.toml");
    fs_err::write(
        &config,
        "[pipeline]\nname = \"opts\"\n[data]\nsource = \"p.txt\"\ntarget = \"column_1\"\n\
         header = false\ndelimiter = \";\"\nquote = \"'\"\ncomment = \"#\"\n\
         columns = { column_8 = \"categorical\" }\n[model]\nhidden = [4]\n",
    )
    .unwrap();
    let out = kiln(&["train", config.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rows: u64 = plan["splits"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(rows, 344, "every row read, the comment line skipped");
    assert_eq!(plan["task"]["classes"], 3, "{plan}");
    assert!(
        plan["features"]
            .as_array()
            .unwrap()
            .contains(&json!("column_8=2007")),
        "{plan}"
    );
}

#[test]
fn roles_decide_what_is_a_feature() {
    let dir = scratch();
    copy_penguins(dir.path());
    let config = pipeline(
        dir.path(),
        "penguins.csv",
        "[data.columns.year]\ntype = \"categorical\"\nrole = \"id\"\n\
         [data.columns.island]\nrole = \"ignore\"\n[data.columns.sex]\ntype = \"categorical\"\n",
        "",
    );
    let out = kiln(&["train", config.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let features: Vec<&str> = plan["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        features
            .iter()
            .all(|f| !f.starts_with("year") && !f.starts_with("island")),
        "{features:?}"
    );
    assert!(features.contains(&"sex=male"), "{features:?}");
    assert!(features.contains(&"bill_length_mm"), "{features:?}");

    // A trained bundle predicts from input without the id column; the manifest keeps roles.
    let (run_dir, manifest) = train(&config, &dir.path().join("runs"), &[]);
    let roles: BTreeMap<&str, &str> = manifest["schema"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles["year"], "id");
    assert_eq!(roles["species"], "target");
    assert!(
        !roles.contains_key("island"),
        "ignored columns are not read"
    );
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut without_year = String::new();
    for line in text.lines() {
        writeln!(without_year, "{}", line.rsplit_once(',').unwrap().0).unwrap();
    }
    let input = dir.path().join("no-year.csv");
    fs_err::write(&input, without_year).unwrap();
    let out = kiln(&[
        "predict",
        run_dir.join("bundle").to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 345);

    // A bundle from before roles were recorded (every column a feature) still loads and
    // reads input without its target.
    let spec_path = run_dir.join("bundle/bundle.json");
    let mut spec = json_file(&spec_path);
    for column in spec["schema"]["columns"].as_array_mut().unwrap() {
        column["role"] = json!("feature");
    }
    fs_err::write(&spec_path, spec.to_string()).unwrap();
    let mut without_species = String::new();
    for line in text.lines() {
        writeln!(without_species, "{}", line.split_once(',').unwrap().1).unwrap();
    }
    let input = dir.path().join("no-species.csv");
    fs_err::write(&input, without_species).unwrap();
    let out = kiln(&[
        "predict",
        run_dir.join("bundle").to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 345);
}

#[test]
fn group_split_keeps_each_group_in_one_split() {
    let dir = scratch();
    copy_penguins(dir.path());
    // Few groups: split by (island, year), 9 groups of 9 to 52 rows.
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut with_group = String::new();
    for (i, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let group = if i == 0 {
            "site".to_owned()
        } else {
            format!("{}-{}", cells[1], cells[7])
        };
        writeln!(with_group, "{line},{group}").unwrap();
    }
    fs_err::write(dir.path().join("g.csv"), &with_group).unwrap();
    let config = pipeline(
        dir.path(),
        "g.csv",
        "columns = { site = { role = \"group\" } }",
        "[split]\nmethod = \"group\"\nvalid = 0.2\ntest = 0.2\n",
    );
    let (run_dir, manifest) = train(&config, &dir.path().join("runs"), &[]);
    assert_eq!(manifest["split_method"], "group");
    let sites: Vec<&str> = with_group
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').unwrap().1)
        .collect();
    let [train_rows, valid, test] = splits(&run_dir);
    assert_eq!(train_rows.len() + valid.len() + test.len(), 344);
    let groups = |rows: &[usize]| -> BTreeSet<&str> { rows.iter().map(|&r| sites[r]).collect() };
    let (a, b, c) = (groups(&train_rows), groups(&valid), groups(&test));
    assert!(!b.is_empty() && !c.is_empty(), "{a:?} {b:?} {c:?}");
    assert!(a.is_disjoint(&b) && a.is_disjoint(&c) && b.is_disjoint(&c));
    // The group is not a feature.
    let plan = kiln(&["train", config.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(!stdout(&plan).contains("site"), "{}", stdout(&plan));

    // The same seed gives the same split; `[split] group` names the column as well.
    let named = pipeline(
        dir.path(),
        "g.csv",
        "",
        "[split]\nmethod = \"group\"\ngroup = \"site\"\nvalid = 0.2\ntest = 0.2\n",
    );
    let (again, _) = train(&named, &dir.path().join("runs"), &[]);
    assert_eq!(splits(&again), splits(&run_dir));
}

#[test]
fn time_split_trains_on_the_past_and_tests_on_the_future() {
    let dir = scratch();
    // A datetime per row, shuffled relative to file order.
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut with_time = String::new();
    let mut times = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            writeln!(with_time, "{line},seen_at").unwrap();
            continue;
        }
        let day = (i * 7919) % 344;
        let time = format!(
            "2024-{:02}-{:02}T{:02}:00:00Z",
            day % 12 + 1,
            day / 12 % 28 + 1,
            day % 24
        );
        writeln!(with_time, "{line},{time}").unwrap();
        times.push(time);
    }
    fs_err::write(dir.path().join("t.csv"), with_time).unwrap();
    let config = pipeline(
        dir.path(),
        "t.csv",
        "",
        "[split]\nmethod = \"time\"\ntime = \"seen_at\"\nvalid = 0.15\ntest = 0.2\n",
    );
    let (run_dir, manifest) = train(&config, &dir.path().join("runs"), &[]);
    assert_eq!(manifest["split_method"], "time");
    let [train_rows, valid, test] = splits(&run_dir);
    assert_eq!((valid.len(), test.len()), (52, 69));
    let latest = |rows: &[usize]| rows.iter().map(|&r| times[r].clone()).max().unwrap();
    let earliest = |rows: &[usize]| rows.iter().map(|&r| times[r].clone()).min().unwrap();
    assert!(latest(&train_rows) <= earliest(&valid));
    assert!(latest(&valid) <= earliest(&test));
}

#[test]
fn a_missing_split_key_or_split_column_is_a_clear_error() {
    let dir = scratch();
    copy_penguins(dir.path());
    let config = pipeline(
        dir.path(),
        "penguins.csv",
        "",
        "[split]\nmethod = \"time\"\ntime = \"sex\"\n",
    );
    let out = kiln(&["train", config.to_str().unwrap()]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(
        message.contains("penguins.csv: line 5, column `sex`: no value to split on"),
        "{message}"
    );
    let config = pipeline(
        dir.path(),
        "penguins.csv",
        "",
        "[split]\nmethod = \"group\"\ngroup = \"islnd\"\n",
    );
    let out = kiln(&["train", config.to_str().unwrap()]);
    let message = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(
        message.contains("no column `islnd`; did you mean `island`?"),
        "{message}"
    );
}

const RULES: &str = "[validate]\nmin_rows = 100\nmax_missing = 0.05\n\
    [validate.columns.bill_length_mm]\nrange = [0, 45]\n\
    [validate.columns.sex]\nmax_missing = { value = 0.01, severity = \"warn\" }\n";

#[test]
fn train_stops_before_fitting_when_an_error_rule_fails() {
    let dir = scratch();
    copy_penguins(dir.path());
    let config = pipeline(dir.path(), "penguins.csv", "", RULES);
    let runs = dir.path().join("runs");
    let (code, message) = train_failure(&config, &runs, &[]);
    assert_eq!(code, Some(1), "{message}");
    let expected = "penguins.csv: validation failed, nothing was fitted:\n  \
        `range` on `bill_length_mm`: 165 values outside [0, 45] (first at lines 21, 75, 113, 154, 155)\n";
    assert!(message.contains(expected), "{message}");
    assert!(
        !message.contains("sex"),
        "warnings do not stop a run: {message}"
    );
    assert_eq!(
        visible_entries(&runs),
        Vec::<String>::new(),
        "no run directory"
    );

    // `kiln validate` reports the same, warnings included, and exits 1.
    let out = kiln(&["validate", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("344 rows; 1 error rule(s) and 1 warning rule(s) failed"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("error    range") && l.contains("165"))
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("warn     max_missing_fraction"))
    );
    let out = kiln(&["validate", config.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["rows"], 344);
    assert_eq!(report["failures"][0]["count"], 165);
    assert_eq!(report["failures"][0]["examples"][0], json!({ "line": 21 }));
    assert_eq!(report["failures"][1]["count"], 11);
}

#[test]
fn warnings_are_kept_in_the_run_and_stats_describe_the_train_rows() {
    let dir = scratch();
    copy_penguins(dir.path());
    let rules = RULES.replace("range = [0, 45]", "range = [0, 100]");
    let config = pipeline(dir.path(), "penguins.csv", "", &rules);
    let out = kiln(&["validate", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (run_dir, manifest) = train(&config, &dir.path().join("runs"), &[]);
    let report = json_file(&run_dir.join("validation.json"));
    assert_eq!(report["failures"].as_array().unwrap().len(), 1);
    assert_eq!(report["failures"][0]["severity"], "warn");

    // stats.json: the training rows' statistics, in the run and in the bundle.
    let stats = json_file(&run_dir.join("stats.json"));
    assert_eq!(stats, json_file(&run_dir.join("bundle/stats.json")));
    let train_rows = &splits(&run_dir)[0];
    assert_eq!(stats["rows"], manifest["splits"]["train"]["rows"]);
    let (_, rows) = penguins();
    let lengths: Vec<f64> = train_rows
        .iter()
        .filter_map(|&r| rows[r][2].as_deref())
        .map(|c| c.parse().unwrap())
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let mean = lengths.iter().sum::<f64>() / lengths.len() as f64;
    let column = &stats["columns"][2];
    assert_eq!(column["name"], "bill_length_mm");
    assert_eq!(column["count"], lengths.len());
    let reported = column["summary"]["mean"].as_f64().unwrap();
    assert!((reported - mean).abs() < 1e-9, "{reported} vs {mean}");
}

#[test]
fn kiln_stats_prints_a_table_and_json() {
    let path = example("penguins.csv");
    let out = kiln(&["stats", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stats: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(stats["rows"], 344);
    let (_, rows) = penguins();
    let masses: Vec<f64> = rows
        .iter()
        .filter_map(|r| r[5].as_deref())
        .map(|c| c.parse().unwrap())
        .collect();
    let mass = &stats["columns"][5];
    assert_eq!(mass["missing"], 2);
    assert_eq!(mass["summary"]["min"], 2700.0);
    assert_eq!(mass["summary"]["max"], 6300.0);
    #[allow(clippy::cast_precision_loss)]
    let mean = masses.iter().sum::<f64>() / masses.len() as f64;
    assert!((mass["summary"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert_eq!(
        stats["columns"][0]["summary"]["top"][0],
        json!({ "value": "Adelie", "count": 152 })
    );

    let out = kiln(&["stats", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("344 rows, 8 columns"), "{table}");
    let mass_line = table
        .lines()
        .find(|l| l.starts_with("body_mass_g"))
        .unwrap();
    for piece in ["numeric", "342", "2700", "6300", "4201.7544"] {
        assert!(mass_line.contains(piece), "{piece}: {mass_line}");
    }
    let species = table.lines().find(|l| l.starts_with("species")).unwrap();
    assert!(
        species.contains("Adelie (152), Gentoo (124), Chinstrap (68)"),
        "{species}"
    );
}

#[test]
fn kiln_schema_prints_toml_a_pipeline_accepts() {
    let dir = scratch();
    copy_penguins(dir.path());
    let out = kiln(&[
        "schema",
        dir.path().join("penguins.csv").to_str().unwrap(),
        "--infer-rows",
        "50",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let schema = stdout(&out);
    assert_eq!(
        schema,
        "[data.columns]\nspecies = \"categorical\"\nisland = \"categorical\"\n\
         bill_length_mm = \"numeric\"\nbill_depth_mm = \"numeric\"\n\
         flipper_length_mm = \"numeric\"\nbody_mass_g = \"numeric\"\nsex = \"categorical\"\n\
         year = \"numeric\"\n"
    );
    // Pasted below `[data]`, with one line edited to the long form, it sets types and roles.
    let edited = schema.replace(
        "year = \"numeric\"",
        "year = { type = \"categorical\", role = \"id\" }",
    );
    let config = pipeline(dir.path(), "penguins.csv", &edited, "");
    let out = kiln(&["train", config.to_str().unwrap(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("year"), "{}", stdout(&out));
}

#[test]
fn data_flag_overrides_the_source_and_target_above_derives_a_class() {
    let dir = scratch();
    copy_penguins(dir.path());
    let config = dir.path().join("pipeline.toml");
    fs_err::write(
        &config,
        "[pipeline]\nname = \"heavy\"\n[data]\nsource = \"not-here.csv\"\n\
         target = \"body_mass_g\"\ntarget_above = 4000\n[model]\nhidden = [8]\n\
         [train]\nepochs = 5\nlr = 0.02\n",
    )
    .unwrap();
    let data = dir.path().join("penguins.csv");
    let (run_dir, manifest) = train(
        &config,
        &dir.path().join("runs"),
        &["--data", data.to_str().unwrap()],
    );
    assert_eq!(manifest["data_path"], data.to_str().unwrap());
    assert_eq!(manifest["task"]["classes"], 2);
    assert!(manifest["metrics"]["test"]["accuracy"].as_f64().unwrap() > 0.6);

    // Predicting needs no target; evaluating derives it from body_mass_g as in training.
    let bundle = run_dir.join("bundle");
    let out = kiln(&["predict", bundle.to_str().unwrap(), data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        "predicted_body_mass_g,prob_false,prob_true"
    );
    let out = kiln(&[
        "evaluate",
        bundle.to_str().unwrap(),
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let scored: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(scored["rows"], 342);
}

#[test]
fn the_flights_example_loads_and_validates_before_fitting() {
    // The real file is too large to commit; 30 rows of its shape must fail `min_rows` only.
    let dir = scratch();
    let mut csv = String::from(
        "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,\
         carrier,flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour\n",
    );
    for i in 0..30 {
        writeln!(
            csv,
            "2013,1,{d},517,515,2,830,819,{delay},UA,1545,N14228,EWR,IAH,227,1400,5,15,\
             2013-01-{d:02}T10:00:00Z",
            d = i % 28 + 1,
            delay = i * 3 - 20
        )
        .unwrap();
    }
    let data = dir.path().join("flights.csv");
    fs_err::write(&data, csv).unwrap();
    let pipeline = example("../flights/pipeline.toml");
    let out = kiln(&[
        "validate",
        pipeline.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{table}{}", stderr(&out));
    assert!(
        table.contains("30 rows; 1 error rule(s) and 0 warning rule(s) failed"),
        "{table}"
    );
    assert!(table.contains("30 rows, fewer than 100000"), "{table}");
}
