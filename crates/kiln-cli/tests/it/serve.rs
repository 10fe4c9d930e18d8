//! `kiln serve` over 127.0.0.1 with a real HTTP client, and `kiln drift`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{example, kiln, stderr, train};

/// Two penguins bundles (seeds 1 and 2) with `[validate]` and `[drift]` rules, trained once
/// per test run.
fn bundles() -> &'static (PathBuf, PathBuf) {
    static BUNDLES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-bundles");
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        let base = fs_err::read_to_string(example("pipeline.toml")).unwrap();
        let pipeline = base
            .replace(
                "source = \"penguins.csv\"",
                &format!(
                    "source = {:?}",
                    example("penguins.csv").display().to_string()
                ),
            )
            .replace("epochs = 40", "epochs = 10")
            + "\n[validate]\ncolumns.bill_length_mm.range = [20.0, 70.0]\ncolumns.island.allowed = [\"Biscoe\", \"Dream\", \"Torgersen\"]\n\n[drift]\npsi = 0.2\nwindow = 200\n";
        let path = dir.join("pipeline.toml");
        fs_err::write(&path, pipeline).unwrap();
        let (a, _) = train(&path, &dir.join("runs"), &["--seed", "1"]);
        let (b, _) = train(&path, &dir.join("runs"), &["--seed", "2"]);
        (a.join("bundle"), b.join("bundle"))
    })
}

/// A `kiln serve` process on a free port, killed on drop.
pub(crate) struct ServeProcess {
    child: Child,
    pub(crate) url: String,
}

impl ServeProcess {
    pub(crate) fn start(bundle: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["serve", bundle.to_str().unwrap(), "--addr", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("kiln serve prints its address")
            .unwrap();
        let url = first.rsplit_once(" on ").map_or_else(
            || panic!("no address in {first:?}"),
            |(_, url)| url.to_owned(),
        );
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange over a fresh connection: the status and the body as JSON (or as a
/// JSON string when it is not JSON). A dozen lines of client keep the test build from
/// pulling an HTTP client crate whose dependencies would rebuild burn.
pub(crate) fn call(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.unwrap_or("");
    // A server refusing a large body may close before reading it all; its answer is still
    // there to read.
    let _ = write!(
        stream,
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, payload) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned())),
    )
}

/// penguins.csv as JSON rows: numbers for numeric columns, `null` for NA, strings else.
fn penguin_rows() -> Vec<Value> {
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let mut row = serde_json::Map::new();
            for (name, cell) in header.iter().zip(line.split(',')) {
                let value = match (cell, cell.parse::<f64>()) {
                    ("NA" | "", _) => Value::Null,
                    (_, Ok(v)) if *name != "year" => json!(v),
                    _ => json!(cell),
                };
                row.insert((*name).to_owned(), value);
            }
            Value::Object(row)
        })
        .collect()
}

#[test]
fn serve_predictions_equal_kiln_predict() {
    let (bundle, _) = bundles();
    let out = tempfile::tempdir().unwrap();
    let csv_out = out.path().join("predictions.csv");
    let predicted = kiln(&[
        "predict",
        bundle.to_str().unwrap(),
        example("penguins.csv").to_str().unwrap(),
        "-o",
        csv_out.to_str().unwrap(),
    ]);
    assert!(predicted.status.success(), "{}", stderr(&predicted));
    let text = fs_err::read_to_string(&csv_out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let expected: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();

    let server = ServeProcess::start(bundle, &["--max-wait-us", "2000"]);
    let rows = penguin_rows();
    assert_eq!(rows.len(), expected.len());
    // Single-row requests from 8 threads (coalesced into batches), then every row at once
    // in columnar form.
    let url = format!("{}/v1/predict", server.url);
    let answers: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (rows, url) = (&rows, &url);
                s.spawn(move || {
                    (t..rows.len())
                        .step_by(8)
                        .map(|r| {
                            let (status, body) =
                                call("POST", url, Some(&json!([rows[r]]).to_string()));
                            assert_eq!(status, 200, "{body}");
                            (r, body["predictions"][0].clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Value)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|(r, _)| *r);
        all.into_iter().map(|(_, v)| v).collect()
    });
    let mut columns = serde_json::Map::new();
    for name in rows[0].as_object().unwrap().keys() {
        columns.insert(name.clone(), rows.iter().map(|r| r[name].clone()).collect());
    }
    let (status, columnar) = call("POST", &url, Some(&Value::Object(columns).to_string()));
    assert_eq!(status, 200, "{columnar}");
    assert!(
        columnar["model"]["id"]
            .as_str()
            .unwrap()
            .starts_with("penguins-species-")
    );
    assert_eq!(columnar["model"]["version"], 1);
    for (source, answers) in [
        ("rows", &answers),
        ("columns", columnar["predictions"].as_array().unwrap()),
    ] {
        for (r, (answer, want)) in answers.iter().zip(&expected).enumerate() {
            assert_eq!(answer["class"], want[0], "{source} row {r}");
            for (name, p) in header.iter().zip(want).skip(1) {
                let class = name.strip_prefix("prob_").unwrap();
                let got = answer["probabilities"][class].as_f64().unwrap();
                let want: f64 = p.parse().unwrap();
                assert!(
                    (got - want).abs() < 1e-5,
                    "{source} row {r} {class}: {got} vs {want}"
                );
            }
        }
    }

    let (status, metadata) = call("GET", &format!("{}/v1/metadata", server.url), None);
    assert_eq!(status, 200);
    assert_eq!(metadata["target"], "species");
    assert_eq!(
        metadata["classes"],
        json!(["Adelie", "Chinstrap", "Gentoo"])
    );
    assert_eq!(
        call("GET", &format!("{}/v1/health", server.url), None).0,
        200
    );
    assert_eq!(
        call("GET", &format!("{}/v1/ready", server.url), None).0,
        200
    );
    let (_, metrics) = call("GET", &format!("{}/metrics", server.url), None);
    let metrics = metrics.as_str().unwrap();
    for line in [
        "kiln_requests_total{route=\"/v1/predict\",status=\"200\"} 345",
        "kiln_predicted_class_total{class=\"Gentoo\"}",
        "kiln_batch_rows_count",
        "kiln_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"} 345",
        "kiln_drift_window_rows 200",
        "kiln_drift_psi{feature=\"bill_length_mm\"}",
        "kiln_drift_ks{feature=\"flipper_length_mm\"}",
        "kiln_drift_chi2_p_value{feature=\"island\"}",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
}

#[test]
fn serve_refuses_bad_input_with_status_and_message() {
    let (bundle, _) = bundles();
    let server = ServeProcess::start(bundle, &["--body-limit", "1000000"]);
    let url = format!("{}/v1/predict", server.url);
    let good = penguin_rows()[0].clone();
    let with = |key: &str, value: Value| {
        let mut row = good.clone();
        row[key] = value;
        row
    };
    let without = |key: &str| {
        let mut row = good.clone();
        row.as_object_mut().unwrap().remove(key);
        row
    };
    let mut wide = good.as_object().unwrap().clone();
    for i in 0..10_000 {
        wide.insert(format!("extra_{i:05}"), json!(i));
    }
    // (case, body, status, message, row, column)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, String, u16, &str, Option<usize>, Option<&str>)> = vec![
        (
            "malformed JSON",
            "[{\"island\": ".into(),
            400,
            "malformed JSON",
            None,
            None,
        ),
        (
            "not rows",
            "42".into(),
            400,
            "expected an array of row objects or an object of column arrays, got a number",
            None,
            None,
        ),
        (
            "no rows",
            "[]".into(),
            400,
            "no rows to predict",
            None,
            None,
        ),
        (
            "row not an object",
            json!([good, 7]).to_string(),
            400,
            "row 1: expected an object, got a number",
            Some(1),
            None,
        ),
        (
            "ragged columns",
            json!({"island": ["Biscoe"], "bill_length_mm": [1.0, 2.0]}).to_string(),
            400,
            "expected an array of 1 values",
            None,
            Some("bill_length_mm"),
        ),
        (
            "unknown column",
            json!([good, with("bill_lenght_mm", json!(1))]).to_string(),
            422,
            "row 1: unknown column `bill_lenght_mm`; did you mean `bill_length_mm`?",
            Some(1),
            Some("bill_lenght_mm"),
        ),
        (
            "missing column",
            json!([without("sex")]).to_string(),
            422,
            "row 0: missing column `sex`",
            Some(0),
            Some("sex"),
        ),
        (
            "wrong type",
            json!([good, good, with("body_mass_g", json!("heavy"))]).to_string(),
            422,
            "row 2, column `body_mass_g`: expected a number, got \"heavy\"",
            Some(2),
            Some("body_mass_g"),
        ),
        (
            "out of range",
            json!([with("bill_length_mm", json!(500.0))]).to_string(),
            422,
            "row 0, column `bill_length_mm`: 500 is outside the range [20, 70]",
            Some(0),
            Some("bill_length_mm"),
        ),
        (
            "not allowed",
            json!([with("island", json!("Atlantis"))]).to_string(),
            422,
            "row 0, column `island`: `Atlantis` is not one of the allowed values",
            Some(0),
            Some("island"),
        ),
        (
            "10,000 columns",
            json!([Value::Object(wide)]).to_string(),
            422,
            "row 0: unknown column `extra_00000`",
            Some(0),
            Some("extra_00000"),
        ),
        (
            "over the body limit",
            format!("[{}]", vec![good.to_string(); 10_000].join(",")),
            413,
            "larger than the limit of 1000000 bytes",
            None,
            None,
        ),
    ];
    for (name, body, status, message, row, column) in cases {
        let (got, answer) = call("POST", &url, Some(&body));
        assert_eq!(got, status, "{name}: {answer}");
        let error = &answer["error"];
        assert!(
            error["message"].as_str().unwrap().contains(message),
            "{name}: {answer}"
        );
        assert_eq!(
            error["row"].as_u64(),
            row.map(|r| r as u64),
            "{name}: {answer}"
        );
        assert_eq!(error["column"].as_str(), column, "{name}: {answer}");
    }
    assert_eq!(call("GET", &format!("{}/nowhere", server.url), None).0, 404);

    // A 100 MB body is refused from its declared length, before it is read.
    let mut stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let size = 100 << 20;
    write!(stream, "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n").unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 1 << 20];
        // The server may close the connection mid-body; that is the point.
        (0..100)
            .take_while(|_| writer.write_all(&chunk).is_ok())
            .count()
    });
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(stream);
    let sent = sender.join().unwrap();
    assert!(sent < 100, "the server read the whole 100 MB body");

    // No bad input ever became a 500, and the server still answers.
    let (status, _) = call("POST", &url, Some(&json!([good]).to_string()));
    assert_eq!(status, 200);
    let (_, metrics) = call("GET", &format!("{}/metrics", server.url), None);
    let metrics = metrics.as_str().unwrap();
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    assert!(
        metrics.contains("kiln_requests_total{route=\"/v1/predict\",status=\"422\"} 6"),
        "{metrics}"
    );
}

/// Posts `body` to `/v1/predict` slowly: the headers, half the body once the server reads it,
/// then `meanwhile`, then the rest; returns the raw response.
fn slow_predict(url: &str, body: &str, meanwhile: impl FnOnce()) -> String {
    let host = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    write!(
        stream,
        "POST /v1/predict HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    // The server answers `100 Continue` once its handler reads the body: the request is then
    // in flight, not a connection still waiting in the listen queue to be accepted.
    let mut interim = Vec::new();
    let mut byte = [0_u8];
    while !interim.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(first.as_bytes()).unwrap();
    stream.flush().unwrap();
    meanwhile();
    // A server that already answered (a timeout) may have closed; its answer is still there.
    let _ = stream.write_all(rest.as_bytes());
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_times_out_slow_requests() {
    let (bundle, _) = bundles();
    let server = ServeProcess::start(bundle, &["--timeout-ms", "100"]);
    let body = json!([penguin_rows()[0]]).to_string();
    let response = slow_predict(&server.url, &body, || {
        std::thread::sleep(Duration::from_millis(400));
    });
    assert!(response.starts_with("HTTP/1.1 504"), "{response}");
    assert!(response.contains("no answer within 100 ms"), "{response}");
}

#[test]
fn serve_reloads_under_load_without_losing_a_request() {
    let (a, b) = bundles();
    let server = ServeProcess::start(a, &["--max-wait-us", "500"]);
    let url = format!("{}/v1/predict", server.url);
    let reload = format!("{}/v1/admin/reload", server.url);
    let rows = penguin_rows();
    let (ids, versions, statuses) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let (rows, url) = (&rows, &url);
                s.spawn(move || {
                    (0..150)
                        .map(|i| {
                            let body = json!([rows[(t * 150 + i) % rows.len()]]).to_string();
                            let (status, answer) = call("POST", url, Some(&body));
                            (status, answer["model"].clone())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let (status, answer) = call("POST", &reload, Some(&json!({"bundle": b}).to_string()));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["model"]["version"], 2);
        std::thread::sleep(Duration::from_millis(200));
        let (status, answer) = call("POST", &reload, Some(&json!({"bundle": a}).to_string()));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["model"]["version"], 3);
        let mut ids = BTreeSet::new();
        let mut versions = BTreeSet::new();
        let mut statuses = BTreeSet::new();
        for client in clients {
            for (status, model) in client.join().unwrap() {
                statuses.insert(status);
                ids.insert(model["id"].as_str().unwrap_or_default().to_owned());
                versions.insert(model["version"].as_u64().unwrap_or_default());
            }
        }
        (ids, versions, statuses)
    });
    assert_eq!(statuses, BTreeSet::from([200]), "every request is answered");
    assert!(
        ids.len() <= 2 && ids.iter().all(|id| id.starts_with("penguins-species-")),
        "{ids:?}"
    );
    assert!(
        versions.is_subset(&BTreeSet::from([1, 2, 3])),
        "{versions:?}"
    );

    // A failed reload says why and keeps the model; SIGHUP reloads the current bundle.
    let (status, answer) = call(
        "POST",
        &reload,
        Some(&json!({"bundle": "/nonexistent"}).to_string()),
    );
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("still serving")
            && message.contains("version 3")
            && message.contains("not a kiln bundle"),
        "{message}"
    );
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, ready) = call("GET", &format!("{}/v1/ready", server.url), None);
        if ready["model"]["version"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload: {ready}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_drains_in_flight_requests_on_sigterm() {
    let (bundle, _) = bundles();
    let mut server = ServeProcess::start(bundle, &[]);
    let body = json!([penguin_rows()[0]]).to_string();
    // SIGTERM arrives while the request's body is half sent: the server stops accepting but
    // finishes it.
    let response = slow_predict(&server.url, &body, || {
        server.signal("TERM");
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            TcpStream::connect(server.url.trim_start_matches("http://")).is_err(),
            "still accepting after SIGTERM"
        );
    });
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"predictions\""), "{response}");
    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

/// `kiln drift BUNDLE DATA --json`: exit code and the drifted features.
fn drift(bundle: &Path, data: &Path, html: &Path) -> (Option<i32>, BTreeSet<String>) {
    let out = kiln(&[
        "drift",
        bundle.to_str().unwrap(),
        data.to_str().unwrap(),
        "--json",
        "--html",
        html.to_str().unwrap(),
    ]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let drifted = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drifted"] == true)
        .map(|f| f["column"].as_str().unwrap().to_owned())
        .collect();
    (out.status.code(), drifted)
}

#[test]
fn drift_flags_exactly_the_shifted_features() {
    let (bundle, _) = bundles();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("drift.html");
    let (code, drifted) = drift(bundle, &example("penguins.csv"), &html);
    assert_eq!(
        (code, drifted),
        (Some(0), BTreeSet::new()),
        "the training data does not drift"
    );
    assert!(
        fs_err::read_to_string(&html)
            .unwrap()
            .contains("<section class=\"drift\">")
    );

    // bill_length_mm + 3 standard deviations; two thirds of Torgersen penguins moved to Dream.
    let stats: Value =
        serde_json::from_slice(&fs_err::read(bundle.join("stats.json")).unwrap()).unwrap();
    let std = stats["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bill_length_mm")
        .unwrap()["summary"]["std"]
        .as_f64()
        .unwrap();
    let text = fs_err::read_to_string(example("penguins.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let names: Vec<&str> = header.split(',').collect();
    let bill = names.iter().position(|n| *n == "bill_length_mm").unwrap();
    let island = names.iter().position(|n| *n == "island").unwrap();
    let mut shifted = format!("{header}\n");
    for (i, line) in lines.enumerate() {
        let mut cells: Vec<String> = line.split(',').map(String::from).collect();
        if let Ok(v) = cells[bill].parse::<f64>() {
            cells[bill] = 3.0f64.mul_add(std, v).to_string();
        }
        if cells[island] == "Torgersen" && i % 3 != 0 {
            cells[island] = "Dream".into();
        }
        shifted.push_str(&cells.join(","));
        shifted.push('\n');
    }
    let path = dir.path().join("shifted.csv");
    fs_err::write(&path, shifted).unwrap();
    let (code, drifted) = drift(bundle, &path, &html);
    assert_eq!(code, Some(1));
    assert_eq!(
        drifted,
        BTreeSet::from(["bill_length_mm".to_owned(), "island".to_owned()])
    );
    assert!(
        fs_err::read_to_string(&html)
            .unwrap()
            .contains("<tr class=\"drifted\"><td>bill_length_mm</td>")
    );
}
