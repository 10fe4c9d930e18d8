//! Training on batches streamed from data larger than memory: a [`BatchSource`] yields each
//! epoch's batches (re-reading its file, say), and [`fit_stream`] steps through them with the
//! same [`Stepper`], epoch bookkeeping, model selection, early stopping and checkpoints as
//! [`fit`](super::fit). A [`ShuffleBuffer`] turns rows in file order into batches shuffled
//! within a bounded buffer.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use kiln_core::Matrix;
use kiln_core::rng::ChaCha8Rng;
use kiln_models::Net;
use kiln_transform::Targets;
use rand::RngExt;
use rand::seq::SliceRandom;

use super::{
    EpochEnd, Hooks, LoopState, Outcome, Stepper, Task, TrainSettings, Trained, check_targets,
    end_epoch, upload,
};
use crate::Error;

/// A batch stream's items: rows and their encoded targets, or the source's error.
pub type StreamedBatch<E> = Result<(Matrix, Targets), E>;

/// The training rows as batches, one pass per epoch, for [`fit_stream`].
pub trait BatchSource {
    /// The source's errors (a data error mid-file); training errors convert into it.
    type Error: From<Error>;

    /// The batches of `epoch` (1-based) in training order: the epoch's rows, each once.
    ///
    /// # Errors
    /// When the pass cannot start (the file cannot be opened).
    #[allow(clippy::type_complexity)] // A boxed iterator of results is the plainest shape.
    fn epoch(
        &mut self,
        epoch: usize,
    ) -> Result<Box<dyn Iterator<Item = StreamedBatch<Self::Error>> + '_>, Self::Error>;
}

/// Trains `model` on the batches `source` streams, validating on `valid` after every epoch
/// (a bounded sample when the valid split is larger than memory), as [`fit`](super::fit) does
/// on matrices: the same steps, schedules, model selection, early stopping and checkpoints.
/// `train_rows` (the rows one epoch yields) sets the steps per epoch for schedules and
/// progress. Runs on `device` alone (`settings.devices` is not read), and does not resume: a
/// stop request ends the epoch's steps and returns `Interrupted` without a mid-epoch
/// checkpoint.
///
/// # Errors
/// The source's errors; as [`fit`](super::fit): [`Error::EmptyTrainingSet`],
/// [`Error::TargetMismatch`], [`Error::OutputWidth`], [`Error::LossMismatch`],
/// [`Error::ClassWeights`], [`Error::UnknownMetric`], [`Error::Diverged`],
/// [`Error::Checkpoint`].
#[allow(clippy::too_many_arguments)]
pub fn fit_stream<B: AutodiffBackend, S: BatchSource>(
    mut model: Net<B>,
    source: &mut S,
    train_rows: usize,
    valid: (&Matrix, &Targets),
    task: Task,
    settings: &TrainSettings,
    device: &B::Device,
    mut hooks: Hooks<'_>,
) -> Result<Trained<B>, S::Error> {
    if train_rows == 0 {
        return Err(Error::EmptyTrainingSet.into());
    }
    let mut stepper = Stepper::new(settings, task, device)?;
    let expected = stepper.objective.kind.outputs(task);
    if model.outputs() != expected {
        return Err(Error::OutputWidth {
            expected,
            found: model.outputs(),
        }
        .into());
    }
    let batch_rows = settings.batch_size.max(1);
    let steps_per_epoch = train_rows.div_ceil(batch_rows);
    let mut state = LoopState::new(batch_rows);
    let mut best_model = None;
    let mut outcome = Outcome::Completed;
    'epochs: while state.epoch < settings.epochs {
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let mut losses = Vec::with_capacity(steps_per_epoch);
        let mut lr = settings.lr;
        let mut rows = 0;
        for batch in source.epoch(epoch)? {
            let (x, y) = batch?;
            rows += x.rows;
            let seed;
            (lr, seed) = state.next_step(settings, steps_per_epoch);
            B::seed(device, seed);
            check_targets(task, &y)?;
            let (input, targets) = upload(x, y, device);
            let (updated, loss) = stepper.step(model, input, targets, lr);
            model = updated;
            losses.push(loss);
            state.count_step(&mut hooks, epoch, steps_per_epoch);
            if hooks.stop.is_some_and(|s| s.load(Ordering::SeqCst)) && stepper.pending == 0 {
                state.end_steps(losses, started);
                outcome = Outcome::Interrupted;
                break 'epochs;
            }
        }
        model = stepper.flush(model, lr);
        state.end_steps(losses, started);
        let end = EpochEnd {
            epoch,
            lr,
            rows,
            batch_rows,
            train_loss: None,
        };
        if let Some(end) = end_epoch(
            &mut state,
            end,
            &model,
            &mut best_model,
            &stepper,
            (valid, task, device),
            settings,
            &mut hooks,
        )? {
            outcome = end;
            break;
        }
    }
    #[allow(clippy::cast_precision_loss)] // Sample counts are far below 2^52.
    let samples_per_second = state.samples as f64 / state.train_seconds.max(f64::MIN_POSITIVE);
    Ok(Trained {
        model: best_model.unwrap_or_else(|| model.valid()),
        best_epoch: state.best.map_or(0, |b| b.1),
        history: state.history,
        outcome,
        train_seconds: state.train_seconds,
        samples_per_second,
        exchange_seconds: 0.0,
        exchanges: 0,
    })
}

/// Rows in file order in, batches out, shuffled within a buffer of `capacity` rows (as
/// `tf.data`'s `shuffle`): once the buffer is full, each incoming row replaces a uniformly
/// drawn buffered row, which joins the batch being built; at the end the rest is shuffled
/// and batched. Memory: `capacity` rows plus the batches one [`push`](Self::push) completes.
#[derive(Debug)]
pub struct ShuffleBuffer {
    capacity: usize,
    batch_size: usize,
    cols: usize,
    classes: bool,
    x: Vec<f32>,
    // Class indices and f32 values are both exact in f64.
    y: Vec<f64>,
    batch_x: Vec<f32>,
    batch_y: Vec<f64>,
    ready: VecDeque<(Matrix, Targets)>,
    rng: ChaCha8Rng,
}

impl ShuffleBuffer {
    /// An empty buffer of `capacity` rows of `cols` features, emitting batches of
    /// `batch_size` rows of class targets (`classes`) or values, shuffled by `rng`.
    pub fn new(
        capacity: usize,
        batch_size: usize,
        cols: usize,
        classes: bool,
        rng: ChaCha8Rng,
    ) -> Self {
        Self {
            capacity: capacity.max(1),
            batch_size: batch_size.max(1),
            cols,
            classes,
            x: Vec::new(),
            y: Vec::new(),
            batch_x: Vec::new(),
            batch_y: Vec::new(),
            ready: VecDeque::new(),
            rng,
        }
    }

    /// Adds the rows of `x` with their targets `y`.
    ///
    /// # Panics
    /// When `x.cols` is not the buffer's width or `y` has another row count (caller bugs).
    pub fn push(&mut self, x: &Matrix, y: &Targets) {
        assert_eq!(x.cols, self.cols, "rows of the buffer's width");
        assert_eq!(x.rows, y.len(), "one target per row");
        for i in 0..x.rows {
            #[allow(clippy::cast_precision_loss)] // Class indices are small.
            let label = match y {
                Targets::Classes(c) => c[i] as f64,
                Targets::Values(v) => f64::from(v[i]),
            };
            let row = x.row(i);
            let held = self.y.len();
            if held < self.capacity {
                self.x.extend_from_slice(row);
                self.y.push(label);
                continue;
            }
            let slot = self.rng.random_range(0..held);
            let kept = &mut self.x[slot * self.cols..(slot + 1) * self.cols];
            self.batch_x.extend_from_slice(kept);
            kept.copy_from_slice(row);
            self.batch_y
                .push(std::mem::replace(&mut self.y[slot], label));
            self.cut_batch(false);
        }
    }

    /// Ends the input: shuffles the buffered rows and batches them (the last batch short).
    pub fn finish(&mut self) {
        let mut order: Vec<usize> = (0..self.y.len()).collect();
        order.shuffle(&mut self.rng);
        for i in order {
            self.batch_x
                .extend_from_slice(&self.x[i * self.cols..(i + 1) * self.cols]);
            self.batch_y.push(self.y[i]);
            self.cut_batch(false);
        }
        self.cut_batch(true);
        self.x = Vec::new();
        self.y = Vec::new();
    }

    /// The next complete batch.
    pub fn pop(&mut self) -> Option<(Matrix, Targets)> {
        self.ready.pop_front()
    }

    /// Moves the batch being built to the ready queue when full (or, at the end, non-empty).
    fn cut_batch(&mut self, last: bool) {
        let rows = self.batch_y.len();
        if rows == self.batch_size || (last && rows > 0) {
            let x = Matrix::new(std::mem::take(&mut self.batch_x), rows, self.cols);
            let labels = std::mem::take(&mut self.batch_y);
            #[allow(clippy::cast_possible_truncation)] // The values came from i64 and f32.
            let y = if self.classes {
                Targets::Classes(labels.into_iter().map(|l| l as i64).collect())
            } else {
                Targets::Values(labels.into_iter().map(|l| l as f32).collect())
            };
            self.ready.push_back((x, y));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_buffer_yields_every_row_once_in_a_seeded_order() {
        let run = |seed| {
            let mut buffer = ShuffleBuffer::new(10, 4, 1, true, kiln_core::rng::stream(seed, "s"));
            let mut out = Vec::new();
            for chunk in 0..5_u8 {
                let values: Vec<f32> = (0..7_u8).map(|i| f32::from(chunk * 7 + i)).collect();
                let classes: Vec<i64> = (0..7_u8).map(|i| i64::from(chunk * 7 + i)).collect();
                buffer.push(&Matrix::new(values, 7, 1), &Targets::Classes(classes));
                while let Some(batch) = buffer.pop() {
                    out.push(batch);
                }
            }
            buffer.finish();
            while let Some(batch) = buffer.pop() {
                out.push(batch);
            }
            out
        };
        let batches = run(1);
        assert!(
            batches[..batches.len() - 1]
                .iter()
                .all(|(x, _)| x.rows == 4)
        );
        let mut rows: Vec<i64> = Vec::new();
        for (x, y) in &batches {
            let Targets::Classes(c) = y else { panic!() };
            // Features and targets travel together.
            #[allow(clippy::cast_precision_loss, clippy::float_cmp)] // Small, exact row numbers.
            let same = x.data.iter().zip(c).all(|(&v, &l)| v == l as f32);
            assert!(same);
            rows.extend(c);
        }
        assert_ne!(rows, (0..35).collect::<Vec<_>>(), "shuffled");
        let mut sorted = rows.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..35).collect::<Vec<_>>(), "each row once");
        let again: Vec<_> = run(1).into_iter().map(|(x, _)| x.data).collect();
        assert_eq!(
            again,
            batches
                .iter()
                .map(|(x, _)| x.data.clone())
                .collect::<Vec<_>>()
        );
    }
}
