//! `kiln train --nodes N`: multi-node data parallelism on MPI, here as processes on loopback.

use crate::{penguins_pipeline, scratch, train_failure};

/// Without an MPI launcher (or without MPI compiled in) a multi-node run stops at once, saying
/// how to start one.
#[test]
fn nodes_without_a_launcher_are_refused_with_what_to_do() {
    let dir = scratch();
    let pipeline = penguins_pipeline(dir.path(), &[]);
    let out = dir.path().join("runs");
    let (code, message) = train_failure(&pipeline, &out, &["--nodes", "2"]);
    assert_eq!(code, Some(2), "{message}");
    let expected = if cfg!(feature = "mpi") {
        "this MPI job has 1 process: start one process per node with the launcher"
    } else {
        "this kiln was built without MPI"
    };
    assert!(message.contains(expected), "{message}");
    assert!(crate::visible_entries(&out).is_empty());
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::io::Read;
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use crate::{penguins_pipeline, scratch, train, train_args, visible_entries};

    /// `mpirun` with `args`, its processes talking over TCP on 127.0.0.1 only, output piped.
    fn launch(args: &[&str]) -> Child {
        Command::new("mpirun")
            .args([
                "--mca",
                "btl",
                "self,tcp",
                "--mca",
                "btl_tcp_if_include",
                "lo",
            ])
            .args(["--mca", "oob_tcp_if_include", "lo"])
            .args(args)
            // Open MPI refuses root (CI's user) without both.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpirun runs (Debian's openmpi-bin)")
    }

    /// `mpirun -np 2 EXTRA kiln ARGS`.
    fn mpirun(extra: &[&str], args: &[&str]) -> Child {
        let kiln = env!("CARGO_BIN_EXE_kiln");
        launch(&[&["-np", "2", "--oversubscribe"], extra, &[kiln], args].concat())
    }

    /// Waits for `child` at most `limit`, killing it past that; its output either way.
    fn bounded(mut child: Child, limit: Duration) -> (Output, bool) {
        let started = Instant::now();
        let finished = loop {
            if child.try_wait().expect("wait").is_some() {
                break true;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (child.wait_with_output().expect("output"), finished)
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn two_nodes_on_loopback_train_penguins_like_one_process_at_the_global_batch() {
        let dir = scratch();
        // 16 rows per node and step: the 32 of the one-process example.
        let pipeline = penguins_pipeline(dir.path(), &[("batch_size = 32", "batch_size = 16")]);
        let out = dir.path().join("nodes");
        let child = mpirun(
            &[],
            &train_args(
                &pipeline,
                &out,
                &["--nodes", "2", "--node-timeout-secs", "60", "--json"],
            ),
        );
        let (output, finished) = bounded(child, Duration::from_mins(4));
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(finished && output.status.success(), "{stderr}");
        let run: Value = serde_json::from_str(stdout.lines().last().expect("lines")).unwrap();
        assert_eq!(run["event"], "run", "{stdout}");
        let nodes = &run["manifest"];
        assert_eq!(nodes["nodes"], 2);
        // Node 1 trained to the same weights and kept nothing; only node 0's run is there.
        let hash = nodes["parameter_hash"].as_str().unwrap();
        let node_one = format!(
            "node 1 of 2: trained {} epochs; weights equal node 0's (parameter hash {})",
            nodes["epochs_run"],
            &hash[..12]
        );
        assert!(stderr.contains(&node_one), "{node_one} in {stderr}");
        assert_eq!(visible_entries(&out), ["penguins-species-1"]);
        assert!(
            nodes["epochs_run"].as_u64().unwrap() >= 10,
            "many all-reduces, not one"
        );

        let (_, one) = train(
            &penguins_pipeline(dir.path(), &[]),
            &dir.path().join("one"),
            &[],
        );
        // The shards make other batches than one process's shuffle, so the models differ;
        // they must be as good.
        for split in ["valid", "test"] {
            let (a, b) = (&nodes["metrics"][split], &one["metrics"][split]);
            let accuracy = |m: &Value| m["accuracy"].as_f64().unwrap();
            assert!(
                (accuracy(a) - accuracy(b)).abs() <= 0.03,
                "{split}: {a} vs {b}"
            );
            let loss = |m: &Value| m["log_loss"].as_f64().unwrap();
            assert!((loss(a) - loss(b)).abs() <= 0.05, "{split}: {a} vs {b}");
        }
    }

    /// The process of rank `rank` among those whose command line mentions `marker`.
    fn rank_pid(marker: &Path, rank: usize) -> Option<u32> {
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        fs_err::read_dir("/proc").ok()?.find_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = fs_err::read(entry.path().join("cmdline")).ok()?;
            let environ = fs_err::read(entry.path().join("environ")).ok()?;
            let mentions = text(&cmdline).contains(marker.to_str()?);
            let ranked = environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes());
            (mentions && ranked && text(&cmdline).contains("kiln")).then_some(pid)
        })
    }

    #[test]
    fn a_node_killed_mid_run_makes_the_other_exit_with_the_timeout_error() {
        let dir = scratch();
        let pipeline = penguins_pipeline(
            dir.path(),
            &[
                ("epochs = 40", "epochs = 1000000"),
                ("early_stopping = { patience = 10 }", ""),
            ],
        );
        let out = dir.path().join("killed");
        // With recovery on, Open MPI leaves the survivor running: kiln's own timeout ends it.
        let mut child = mpirun(
            &["--enable-recovery"],
            &train_args(
                &pipeline,
                &out,
                &["--nodes", "2", "--node-timeout-secs", "3", "--json"],
            ),
        );
        // Kill node 1 once node 0 has trained a few epochs (its epoch lines on stdout).
        let mut stdout = child.stdout.take().expect("piped");
        let started = Instant::now();
        let mut buffer = [0; 4096];
        let mut lines = 0;
        while lines < 5 {
            let read = stdout.read(&mut buffer).expect("stdout");
            lines += buffer[..read].split(|&b| b == b'\n').count() - 1;
            assert!(
                read > 0 && started.elapsed() < Duration::from_mins(2),
                "no epochs"
            );
        }
        let victim = rank_pid(&out, 1).expect("node 1 is running");
        let killed = Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status();
        assert!(killed.expect("kill runs").success());
        let killed_at = Instant::now();
        // Drain stdout so node 0 never blocks on a full pipe.
        let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let (output, finished) = bounded(child, Duration::from_mins(1));
        let _ = drain.join();
        let stderr = text(&output.stderr);
        assert!(finished, "the surviving node hung: {stderr}");
        assert!(killed_at.elapsed() < Duration::from_secs(30), "{stderr}");
        assert!(
            stderr.contains("error: node 0 of 2: the gradient sum of epoch")
                && stderr.contains("did not complete within 3.0 s: another node died"),
            "{stderr}"
        );
        assert!(
            visible_entries(&out).is_empty(),
            "no run directory is committed"
        );
    }

    #[test]
    fn a_node_that_never_joins_makes_the_other_exit_with_the_timeout_error() {
        let dir = scratch();
        let pipeline = penguins_pipeline(dir.path(), &[]);
        let out = dir.path().join("alone");
        // The second process of the job is not kiln: it never joins.
        let args = train_args(
            &pipeline,
            &out,
            &["--nodes", "2", "--node-timeout-secs", "2"],
        );
        let kiln = env!("CARGO_BIN_EXE_kiln");
        let child = launch(
            &[
                &["-np", "1", kiln],
                &args[..],
                &[":", "-np", "1", "sleep", "60"],
            ]
            .concat(),
        );
        let started = Instant::now();
        let (output, finished) = bounded(child, Duration::from_secs(40));
        let stderr = text(&output.stderr);
        assert!(
            finished && started.elapsed() < Duration::from_secs(30),
            "{stderr}"
        );
        assert!(
            stderr.contains("error: joining the MPI job of 2 nodes did not complete within 2.0 s"),
            "{stderr}"
        );
        assert!(visible_entries(&out).is_empty());
    }
}
