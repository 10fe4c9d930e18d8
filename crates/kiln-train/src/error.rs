/// Errors of the training loop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loss became NaN or infinite.
    #[error("training diverged: the loss was {loss} at epoch {epoch}, step {step}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// The non-finite loss.
        loss: f32,
    },
    /// Nothing to train on.
    #[error("the training set is empty")]
    EmptyTrainingSet,
    /// Targets of the wrong kind for the task.
    #[error("targets do not match the task: {task:?}")]
    TargetMismatch {
        /// The task.
        task: crate::Task,
    },
}

/// Result with kiln-train's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
