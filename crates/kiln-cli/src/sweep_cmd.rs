//! `kiln sweep`: runs a pipeline's `[sweep]`, reports each run, prints the leaderboard.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_core::BackendKind;
use kiln_pipeline::{Sweep, SweepEvent, SweepOptions, SweepSummary};
use serde_json::json;

/// Loads and checks the sweep (bad config exits 2 before anything runs), runs it, prints it.
pub(crate) fn sweep(
    pipeline: &Path,
    out: PathBuf,
    workers: Option<usize>,
    backend: BackendKind,
    json: bool,
) -> kiln_pipeline::Result<()> {
    let plan = Sweep::load(pipeline)?;
    let options = SweepOptions {
        workers,
        stop: Some(crate::sigint_flag()),
        command: std::env::args().collect(),
        ..SweepOptions::new(backend, out)
    };
    // Events come from the worker threads one at a time: JSON lines on stdout, or progress
    // lines on stderr so stdout holds only the leaderboard.
    let on_event = |event: &SweepEvent<'_>| {
        if json {
            println!("{}", event_json(event));
        } else {
            eprintln!("{}", event_line(event));
        }
    };
    let summary = plan.run(&options, &on_event)?;
    let mut stdout = std::io::stdout().lock();
    if json {
        let line = json!({
            "event": "sweep",
            "dir": summary.dir,
            "best": summary.best,
            "runs_ran": summary.runs_ran,
            "runs_skipped": summary.runs_skipped,
            "trials_ran": summary.trials_ran,
            "leaderboard": summary.leaderboard,
        });
        writeln!(stdout, "{line}")?;
        return Ok(());
    }
    write!(stdout, "{}", leaderboard_table(&summary))?;
    Ok(())
}

fn event_json(event: &SweepEvent<'_>) -> serde_json::Value {
    match *event {
        SweepEvent::Started {
            dir,
            trials,
            runs,
            done,
            workers,
        } => json!({ "event": "start", "dir": dir, "trials": trials, "runs": runs,
                     "skipped": done, "workers": workers }),
        SweepEvent::Rung {
            index,
            epochs,
            trials,
        } => json!({ "event": "rung", "index": index, "epochs": epochs, "trials": trials }),
        SweepEvent::Run {
            trial,
            fold,
            epochs,
            metric,
            score,
            diverged,
            run_dir,
            done,
            runs,
        } => json!({ "event": "run", "trial": trial, "fold": fold, "epochs": epochs,
                     "metric": metric, "score": score, "diverged": diverged,
                     "run_dir": run_dir, "done": done, "runs": runs }),
    }
}

fn event_line(event: &SweepEvent<'_>) -> String {
    match *event {
        SweepEvent::Started {
            dir,
            trials,
            runs,
            done,
            workers,
        } => {
            let mut line = format!(
                "sweep     {}: {trials} trials, {runs} runs, {workers} at a time",
                dir.display()
            );
            if done > 0 {
                let _ = write!(
                    line,
                    "\nresuming  {done} of {runs} runs were finished by an earlier sweep: skipped"
                );
            }
            line
        }
        SweepEvent::Rung {
            index,
            epochs,
            trials,
        } => {
            let trials: Vec<String> = trials.iter().map(ToString::to_string).collect();
            format!(
                "rung {index}    {epochs} epochs: trials {}",
                trials.join(", ")
            )
        }
        SweepEvent::Run {
            trial,
            fold,
            epochs,
            metric,
            score,
            diverged,
            done,
            runs,
            ..
        } => {
            let result = match (diverged, score) {
                (true, _) => "diverged".to_owned(),
                (false, Some(score)) => format!("{metric} {score:.4}"),
                (false, None) => format!("{metric} undefined"),
            };
            format!("  [{done}/{runs}] trial {trial} fold {fold} ({epochs} epochs): {result}")
        }
    }
}

fn leaderboard_table(summary: &SweepSummary) -> String {
    let board = &summary.leaderboard;
    let header = format!("{} (mean ± std)", board.metric);
    let mut text = format!(
        "{:>4} {:>5}  {header:<22} {:>6}  params\n",
        "rank", "trial", "epochs"
    );
    for t in &board.trials {
        let score = match (t.mean, t.std) {
            (Some(mean), Some(std)) => format!("{mean:.4} ± {std:.4}"),
            _ if t.diverged => "diverged".to_owned(),
            _ => "undefined".to_owned(),
        };
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let _ = writeln!(
            text,
            "{:>4} {:>5}  {score:<22} {:>6}  {}",
            t.rank,
            t.trial,
            t.epochs,
            params.join(", ")
        );
    }
    let direction = match board.direction {
        kiln_train::Mode::Max => "highest",
        kiln_train::Mode::Min => "lowest",
    };
    let _ = writeln!(
        text,
        "ranked    {}: {direction} mean {} over {} fold(s) first",
        summary.dir.join("leaderboard.json").display(),
        board.metric,
        board.folds
    );
    match (&summary.best, board.trials.first()) {
        (Some(best), Some(top)) => {
            let _ = writeln!(
                text,
                "best      {} (trial {}): kiln train {}",
                best.display(),
                top.trial,
                best.display()
            );
        }
        _ => text.push_str("best      none: no trial has a score\n"),
    }
    text
}
