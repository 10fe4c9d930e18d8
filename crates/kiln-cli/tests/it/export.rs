//! `kiln export` and `.kiln` files: every command that takes a bundle gives the same answer
//! from the archive as from the directory, and a flipped byte, a truncated file and a newer
//! archive format are each refused with their own message and exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::serve::{ServeProcess, call};
use crate::{example, kiln, penguins_pipeline, scratch, stderr, train};

/// A penguins run trained once per test run, and its bundle exported to a `.kiln` file.
struct Exported {
    run: PathBuf,
    archive: PathBuf,
}

fn exported() -> &'static Exported {
    static EXPORTED: OnceLock<Exported> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-run");
        let _ = fs_err::remove_dir_all(&dir);
        fs_err::create_dir_all(&dir).unwrap();
        let config = penguins_pipeline(&dir, &[("epochs = 40", "epochs = 10")]);
        let (run, _) = train(&config, &dir.join("runs"), &[]);
        let archive = dir.join("model.kiln");
        let out = kiln(&[
            "export",
            run.to_str().unwrap(),
            "-o",
            archive.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "kiln export failed: {}", stderr(&out));
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(
            listing.starts_with(&format!("wrote {} (archive format 1)", archive.display())),
            "{listing}"
        );
        for file in ["bundle.json", "manifest.json", "model.mpk", "stats.json"] {
            assert!(listing.contains(&format!("  {file} ")), "{listing}");
        }
        Exported { run, archive }
    })
}

/// `kiln ARGS` with `TMPDIR` set to `tmp` (where archives are extracted).
fn kiln_in(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("TMPDIR", tmp)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("the kiln binary runs")
}

/// The stdout of a successful `kiln ARGS`.
fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = kiln(args);
    assert!(out.status.success(), "kiln {args:?}: {}", stderr(&out));
    out.stdout
}

/// Where member `name`'s data starts in the archive, and its size.
fn member(archive: &[u8], name: &str) -> (usize, usize) {
    let mut tar = tar::Archive::new(archive);
    let entry = tar
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path_bytes().as_ref() == name.as_bytes())
        .unwrap_or_else(|| panic!("no member {name}"));
    (
        usize::try_from(entry.raw_file_position()).unwrap(),
        usize::try_from(entry.size()).unwrap(),
    )
}

#[test]
fn an_archive_predicts_evaluates_inspects_and_drifts_as_its_directory() {
    let Exported { run, archive } = exported();
    let bundle = run.join("bundle");
    let (bundle, archive) = (bundle.to_str().unwrap(), archive.to_str().unwrap());
    let data = example("penguins.csv");
    let data = data.to_str().unwrap();

    // Predictions, byte for byte through the CSV writer; a private temporary directory holds
    // the extracted bundle while kiln runs and is gone after.
    let tmp = scratch();
    let dir = scratch();
    let from_dir = dir.path().join("dir.csv");
    let from_archive = dir.path().join("archive.csv");
    for (source, out) in [(bundle, &from_dir), (archive, &from_archive)] {
        let output = kiln_in(
            tmp.path(),
            &["predict", source, data, "-o", out.to_str().unwrap()],
        );
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let predictions = fs_err::read(&from_dir).unwrap();
    assert_eq!(String::from_utf8_lossy(&predictions).lines().count(), 345);
    assert!(predictions == fs_err::read(&from_archive).unwrap());
    assert_eq!(
        fs_err::read_dir(tmp.path()).unwrap().count(),
        0,
        "the extracted copy is removed"
    );

    for args in [
        vec!["evaluate", "BUNDLE", data, "--json"],
        vec!["inspect", "BUNDLE", "--json"],
        vec!["inspect", "BUNDLE"],
        vec!["drift", "BUNDLE", data, "--json"],
    ] {
        let with = |source: &str| -> Vec<String> {
            args.iter()
                .map(|&a| if a == "BUNDLE" { source } else { a }.to_owned())
                .collect()
        };
        let (a, b) = (with(bundle), with(archive));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        assert_eq!(stdout_of(&a), stdout_of(&b), "{args:?}");
    }
}

#[test]
fn export_takes_a_run_or_a_bundle_and_is_deterministic() {
    let Exported { run, archive } = exported();
    let dir = scratch();
    // No -o: `<pipeline name>.kiln` in the current directory.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["export", run.join("bundle").to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let default = dir.path().join("penguins-species.kiln");
    assert!(fs_err::read(&default).unwrap() == fs_err::read(archive).unwrap());

    // Something that is not a bundle is refused as bad input, and nothing is written.
    let target = dir.path().join("nothing.kiln");
    let out = kiln(&[
        "export",
        dir.path().to_str().unwrap(),
        "-o",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a kiln bundle"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists());
}

#[test]
fn a_flipped_byte_a_truncated_file_and_a_newer_format_each_have_their_own_error() {
    let Exported { archive, .. } = exported();
    let bytes = fs_err::read(archive).unwrap();
    let dir = scratch();
    let data = example("penguins.csv");
    let refused = |name: &str, bytes: &[u8]| -> String {
        let path = dir.path().join(name);
        fs_err::write(&path, bytes).unwrap();
        let out_csv = dir.path().join(format!("{name}.csv"));
        let out = kiln(&[
            "predict",
            path.to_str().unwrap(),
            data.to_str().unwrap(),
            "-o",
            out_csv.to_str().unwrap(),
        ]);
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {message}");
        assert!(!out_csv.exists(), "{name}: no predictions");
        assert!(
            message.starts_with(&format!("error: {}: ", path.display())),
            "{name}: the error names the archive: {message}"
        );
        message
    };
    let (start, size) = member(&bytes, "model.mpk");

    let mut flipped = bytes.clone();
    flipped[start + size / 2] ^= 0x01;
    let message = refused("flipped.kiln", &flipped);
    assert!(
        message.contains("member `model.mpk` is corrupt: its blake3 is "),
        "{message}"
    );

    let message = refused("truncated.kiln", &bytes[..start + size / 2]);
    assert!(
        message.contains(&format!(
            "truncated kiln archive: member `model.mpk` has {} of its {size} bytes",
            size / 2
        )),
        "{message}"
    );

    // The archive a future kiln might write: the same members, a higher format.
    let mut newer = tar::Builder::new(Vec::new());
    let mut tar = tar::Archive::new(bytes.as_slice());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        if entry.path_bytes().as_ref() == b"kiln-archive.json" {
            let mut manifest: Value = serde_json::from_slice(&content).unwrap();
            assert_eq!(manifest["format"], 1);
            manifest["format"] = json!(2);
            content = serde_json::to_vec_pretty(&manifest).unwrap();
        }
        let mut header = entry.header().clone();
        header.set_size(content.len() as u64);
        header.set_cksum();
        newer.append(&header, content.as_slice()).unwrap();
    }
    let message = refused("newer.kiln", &newer.into_inner().unwrap());
    assert!(
        message.ends_with("made by a newer kiln (archive format 2, this kiln reads up to 1)\n"),
        "{message}"
    );

    // Not an archive at all.
    let message = refused("data.kiln", &fs_err::read(&data).unwrap());
    assert!(message.contains("not a kiln archive"), "{message}");
}

#[test]
fn serve_loads_and_reloads_an_archive() {
    let Exported { run, archive } = exported();
    let rows = json!([
        {"island": "Biscoe", "bill_length_mm": 46.1, "bill_depth_mm": 13.2,
         "flipper_length_mm": 211, "body_mass_g": 4500, "sex": "female", "year": 2007},
        {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
         "flipper_length_mm": 192, "body_mass_g": 3500, "sex": null, "year": 2007},
    ])
    .to_string();
    let answer = |bundle: &Path| {
        let server = ServeProcess::start(bundle, &[]);
        let (status, predicted) = call("POST", &format!("{}/v1/predict", server.url), Some(&rows));
        assert_eq!(status, 200, "{predicted}");
        let (_, metadata) = call("GET", &format!("{}/v1/metadata", server.url), None);
        assert_eq!(metadata["model"]["bundle"], json!(bundle));
        // A reload reads the archive again, not its extracted copy.
        let (status, reloaded) = call("POST", &format!("{}/v1/admin/reload", server.url), Some(""));
        assert_eq!(status, 200, "{reloaded}");
        assert_eq!(reloaded["model"]["version"], 2);
        predicted
    };
    let from_archive = answer(archive);
    let from_dir = answer(&run.join("bundle"));
    assert_eq!(from_archive["predictions"], from_dir["predictions"]);
    assert_eq!(from_archive["model"]["id"], from_dir["model"]["id"]);
}
