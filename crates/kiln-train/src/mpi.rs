//! [`Collective`] on MPI (the `mpi` feature): the layer Horovod and most HPC training use,
//! started by `mpirun`, `srun` or an MPI operator, which give every process its rank.
//!
//! An MPI call that a dead or missing node never completes blocks forever (Open MPI aborts the
//! job itself when its launcher sees a process die, unless `--enable-recovery`). A watchdog
//! thread therefore bounds every exchange: past the timeout it prints which exchange and
//! which node waited, and ends the process with [`TIMEOUT_EXIT_CODE`]. It cannot return an
//! error instead: the thread that waits is inside MPI, and MPI offers no way to cancel a
//! collective.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::Communicator;
use mpi::traits::CommunicatorCollectives;

use crate::collective::Collective;
use crate::{Error, Result};

/// The exit code of a node whose exchange timed out.
pub const TIMEOUT_EXIT_CODE: i32 = 3;

/// This process's place in an MPI job.
pub struct MpiNodes {
    universe: Universe,
    rank: usize,
    nodes: usize,
    watchdog: Arc<Watchdog>,
}

struct Watchdog {
    started: Instant,
    timeout: Duration,
    /// Milliseconds since `started` by which the exchange in progress must end; 0: none.
    deadline_ms: AtomicU64,
    /// What is being exchanged, for the timeout message.
    what: Mutex<String>,
}

impl MpiNodes {
    /// Joins the MPI job this process was started in and checks that it has `nodes`
    /// processes (and, when given, that this one is `rank`). `timeout` bounds the joining
    /// and every later exchange.
    ///
    /// # Errors
    /// [`Error::Nodes`] when MPI was already initialized, or the job's size or this process's
    /// rank is not what was asked (e.g. `kiln train --nodes 2` started without `mpirun`).
    pub fn join(nodes: usize, rank: Option<usize>, timeout: Duration) -> Result<Self> {
        let watchdog = Arc::new(Watchdog {
            started: Instant::now(),
            timeout,
            deadline_ms: AtomicU64::new(0),
            what: Mutex::new(String::new()),
        });
        spawn_watchdog(Arc::clone(&watchdog));
        watchdog.arm(&format!("joining the MPI job of {nodes} nodes"));
        // Serialized: kiln calls MPI from one thread at a time, not always the main one.
        let (universe, _) =
            mpi::initialize_with_threading(mpi::Threading::Serialized).ok_or_else(|| {
                Error::Nodes {
                    message: "MPI was already initialized in this process".into(),
                }
            })?;
        watchdog.disarm();
        let world = universe.world();
        let size = usize::try_from(world.size()).unwrap_or(0);
        let own = usize::try_from(world.rank()).unwrap_or(0);
        if size != nodes {
            return Err(Error::Nodes {
                message: format!(
                    "--nodes {nodes}, but this MPI job has {size} process{}: start one process \
                     per node with the launcher, e.g. `mpirun -np {nodes} kiln train …` or \
                     `srun --ntasks={nodes} kiln train …`",
                    if size == 1 { "" } else { "es" }
                ),
            });
        }
        if let Some(rank) = rank
            && rank != own
        {
            return Err(Error::Nodes {
                message: format!("--node-rank {rank}, but MPI gave this process rank {own}"),
            });
        }
        Ok(Self {
            universe,
            rank: own,
            nodes: size,
            watchdog,
        })
    }
}

impl Collective for MpiNodes {
    fn rank(&self) -> usize {
        self.rank
    }

    fn nodes(&self) -> usize {
        self.nodes
    }

    fn sum(&self, values: &mut [f32], what: &str) -> Result<()> {
        let send = values.to_vec();
        self.watchdog.arm(what);
        // Every standard all-reduce algorithm leaves identical bits on every rank for a
        // commutative sum (each partial sum is formed once and copied, or formed from the
        // same two operands on both partners); `fit` checks the weights agree at the end.
        self.universe
            .world()
            .all_reduce_into(&send[..], values, SystemOperation::sum());
        self.watchdog.disarm();
        Ok(())
    }
}

impl Watchdog {
    fn arm(&self, what: &str) {
        what.clone_into(&mut self.what.lock().unwrap_or_else(PoisonError::into_inner));
        let now = elapsed_ms(self.started);
        let limit = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        self.deadline_ms
            .store(now.saturating_add(limit).max(1), Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.deadline_ms.store(0, Ordering::SeqCst);
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn spawn_watchdog(watchdog: Arc<Watchdog>) {
    let timeout = watchdog.timeout;
    let poll = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(250));
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(poll);
            let deadline = watchdog.deadline_ms.load(Ordering::SeqCst);
            if deadline != 0 && elapsed_ms(watchdog.started) > deadline {
                let what = watchdog
                    .what
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                eprintln!(
                    "error: {what} did not complete within {:.1} s: another node died, hangs \
                     or never joined (raise the limit with --node-timeout-secs)",
                    timeout.as_secs_f64()
                );
                // The waiting thread is inside MPI, which cannot cancel a collective.
                #[allow(clippy::exit)]
                std::process::exit(TIMEOUT_EXIT_CODE);
            }
        }
    });
}
