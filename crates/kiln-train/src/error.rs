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
    /// A loss that does not fit the task.
    #[error("loss {loss:?} does not fit a {task:?} task")]
    LossMismatch {
        /// The loss asked for.
        loss: crate::LossKind,
        /// The task.
        task: crate::Task,
    },
    /// A monitored metric that the loop does not compute.
    #[error("unknown metric `{metric}` to monitor; available: {available}")]
    UnknownMetric {
        /// The metric asked for.
        metric: String,
        /// What exists.
        available: String,
    },
    /// Writing or reading a checkpoint failed.
    #[error("{}: checkpoint: {message}", path.display())]
    Checkpoint {
        /// The checkpoint directory.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
    /// Nothing to train on.
    #[error("the training set is empty")]
    EmptyTrainingSet,
    /// A model whose output width does not fit the task and loss.
    #[error("the model has {found} outputs, but the task and loss need {expected}")]
    OutputWidth {
        /// Outputs needed.
        expected: usize,
        /// Outputs of the model.
        found: usize,
    },
    /// Class weights whose count is not the task's class count.
    #[error("{found} class weights for {classes} classes: give one weight per class")]
    ClassWeights {
        /// Classes of the task.
        classes: usize,
        /// Weights given.
        found: usize,
    },
    /// The data-parallel devices asked for are not there.
    #[error(transparent)]
    Devices(#[from] kiln_core::Error),
    /// The nodes of a multi-node run cannot train together.
    #[error("multi-node training: {message}")]
    Nodes {
        /// What is wrong, and what to do.
        message: String,
    },
    /// Targets of the wrong kind for the task.
    #[error("targets do not match the task: {task:?}")]
    TargetMismatch {
        /// The task.
        task: crate::Task,
    },
}

/// Result with kiln-train's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
