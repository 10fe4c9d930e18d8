//! `kiln train --nodes N`: joining a multi-node run (built with `--features mpi`).

use kiln_pipeline::NodeGroup;

/// The flags of a multi-node `kiln train`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// Train data-parallel across N processes started by an MPI launcher (`mpirun -np N`,
    /// `srun`): each trains on its shard of the rows, gradients are summed every step, and
    /// node 0 writes the run directory. Needs kiln built with `--features mpi`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub(crate) nodes: usize,
    /// This process's rank, checked against the launcher's (default: the launcher's).
    #[arg(long, value_name = "I", requires = "nodes")]
    pub(crate) node_rank: Option<usize>,
    /// Seconds a node waits for the others at any exchange before it exits with an error
    /// naming the exchange (exit code 3): a node that died or never joined.
    #[arg(long, value_name = "SECONDS", default_value_t = 120.0)]
    pub(crate) node_timeout_secs: f64,
}

impl NodeArgs {
    /// Joins the other nodes; `None` for a one-node run.
    pub(crate) fn join(&self) -> kiln_pipeline::Result<Option<NodeGroup>> {
        if self.nodes == 1 {
            return Ok(None);
        }
        join(self)
    }
}

#[cfg(feature = "mpi")]
fn join(args: &NodeArgs) -> kiln_pipeline::Result<Option<NodeGroup>> {
    let timeout = std::time::Duration::try_from_secs_f64(args.node_timeout_secs).map_err(|e| {
        kiln_train::Error::Nodes {
            message: format!("--node-timeout-secs {}: {e}", args.node_timeout_secs),
        }
    })?;
    let nodes = kiln_train::mpi::MpiNodes::join(args.nodes, args.node_rank, timeout)?;
    Ok(Some(NodeGroup(std::sync::Arc::new(nodes))))
}

#[cfg(not(feature = "mpi"))]
fn join(args: &NodeArgs) -> kiln_pipeline::Result<Option<NodeGroup>> {
    Err(kiln_train::Error::Nodes {
        message: format!(
            "--nodes {}: this kiln was built without MPI; build it with `cargo build --release \
             -p kiln-cli --features mpi` (needs Debian's libopenmpi-dev and libclang-dev)",
            args.nodes
        ),
    }
    .into())
}

/// Where a node other than node 0 stages its run, which it does not keep: a temporary
/// directory, removed when dropped.
pub(crate) fn scratch_out(group: &NodeGroup) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("kiln-node-{}-", group.0.rank()))
        .tempdir()
}
