//! Dynamic micro-batching: one thread takes checked requests from a bounded queue, joins
//! those that arrive within `max_wait` (up to `max_batch` rows) into one table, and runs the
//! model once for them. burn is synchronous, so the model never runs on the async executor.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::time::{Duration, Instant};

use kiln_data::Table;
use kiln_pipeline::Prediction;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::model::Model;

/// What a request gets back: its predictions, or why the model failed (logged, not shown).
pub(crate) type Reply = Result<Vec<Prediction>, String>;

/// One request's checked rows, the model it was checked against, and where to answer.
pub(crate) struct Job {
    pub(crate) model: Arc<Model>,
    pub(crate) table: Table,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// Starts the batching thread; it ends when every sender is dropped. `in_flight` counts the
/// predict requests being handled: once all of them are in the batch, waiting for more is
/// pointless, so a lone client never pays `max_wait`.
pub(crate) fn start(
    max_batch: usize,
    max_wait: Duration,
    queue: usize,
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
) -> std::io::Result<SyncSender<Job>> {
    let (tx, rx) = sync_channel(queue);
    // The batcher is the one thread of its own rayon pool: burn-ndarray wraps every product
    // in `rayon::scope`, which from a thread outside a pool hands the work to the global
    // pool and sleeps until it is done, two thread switches per layer. Inside a pool of one
    // it runs in place.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "kiln-batcher".into())
        .build()
        .map_err(std::io::Error::other)?
        .spawn(move || run(&rx, max_batch, max_wait, &metrics, &in_flight));
    Ok(tx)
}

fn run(
    rx: &Receiver<Job>,
    max_batch: usize,
    max_wait: Duration,
    metrics: &Metrics,
    in_flight: &AtomicUsize,
) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + max_wait;
        let mut rows = first.table.n_rows();
        let mut jobs = vec![first];
        while rows < max_batch {
            // Take what is queued at once; wait for more only until the deadline.
            let next = match rx.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    if jobs.len() >= in_flight.load(Ordering::SeqCst) {
                        break;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            rows += next.table.n_rows();
            jobs.push(next);
        }
        // Requests that timed out while queued are not computed.
        jobs.retain(|job| !job.reply.is_closed());
        // A reload between requests splits the batch: each runs on the model it was checked
        // against.
        while !jobs.is_empty() {
            let model = Arc::clone(&jobs[0].model);
            let split = jobs
                .iter()
                .position(|j| !Arc::ptr_eq(&j.model, &model))
                .unwrap_or(jobs.len());
            let rest = jobs.split_off(split);
            predict(&model, jobs, metrics);
            jobs = rest;
        }
    }
}

fn predict(model: &Model, jobs: Vec<Job>, metrics: &Metrics) {
    let tables: Vec<&Table> = jobs.iter().map(|j| &j.table).collect();
    let result = Table::concat(&tables)
        .map_err(|e| e.to_string())
        .and_then(|table| {
            let rows: Vec<usize> = (0..table.n_rows()).collect();
            // A bug in a model must not take the server down: answer 500 and go on.
            let predicted = std::panic::catch_unwind(AssertUnwindSafe(|| {
                model.predictor.predict(&table, &rows)
            }))
            .map_err(|_| "the model panicked".to_owned())?
            .map_err(|e| e.to_string())?;
            if let Ok(mut window) = model.window.lock() {
                window.push(&table);
            }
            Ok(predicted.to_rows())
        });
    match result {
        Ok(mut predictions) => {
            metrics.record_batch(predictions.len(), &predictions);
            for job in jobs.into_iter().rev() {
                let tail = predictions.split_off(predictions.len() - job.table.n_rows());
                // The request may have timed out meanwhile; nobody is left to answer.
                let _ = job.reply.send(Ok(tail));
            }
        }
        Err(message) => {
            for job in jobs {
                let _ = job.reply.send(Err(message.clone()));
            }
        }
    }
}
