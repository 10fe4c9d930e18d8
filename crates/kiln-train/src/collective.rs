//! The exchange between the processes ("nodes") of a multi-node run.
//!
//! kiln's loop needs one operation across nodes: an element-wise sum of an f32 buffer that
//! leaves the same bits on every node, so that every node applies the same update and the
//! weights never drift apart. [`Collective`] is that operation; the `mpi` feature implements
//! it on MPI (`crate::mpi`). Everything else (sharding, the start-of-run agreement, the
//! weighting of each node's gradients) is built on it here and in the loop.

use crate::{Error, Result};

/// An element-wise sum across the nodes of a run.
pub trait Collective {
    /// This node, `0..nodes()`.
    fn rank(&self) -> usize;

    /// Nodes in the run.
    fn nodes(&self) -> usize;

    /// Replaces `values` by their element-wise sum over every node, the same bits on every
    /// node. Blocks until every node has called it with as many values; `what` names the
    /// exchange for the error a node that never arrives causes.
    ///
    /// # Errors
    /// The implementation's, when the exchange fails or times out.
    fn sum(&self, values: &mut [f32], what: &str) -> Result<()>;
}

/// f32 holds integers exactly up to 2^24: a u64 crosses a sum as four 16-bit pieces.
const PIECES: usize = 4;

fn pieces(value: u64) -> [f32; PIECES] {
    std::array::from_fn(|i| f32::from(u16::try_from((value >> (16 * i)) & 0xFFFF).unwrap_or(0)))
}

fn join(pieces: &[f32]) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // Each piece is < 2^16.
    pieces
        .iter()
        .enumerate()
        .map(|(i, &p)| (p as u64) << (16 * i))
        .sum()
}

/// Every node's `values`, in rank order, from one sum: each node fills its own slots.
///
/// # Errors
/// The collective's.
pub fn gather(collective: &dyn Collective, values: &[u64], what: &str) -> Result<Vec<Vec<u64>>> {
    let per_node = values.len() * PIECES;
    let mut buffer = vec![0.0; per_node * collective.nodes()];
    let own = &mut buffer[collective.rank() * per_node..][..per_node];
    for (slot, &value) in own.chunks_mut(PIECES).zip(values) {
        slot.copy_from_slice(&pieces(value));
    }
    collective.sum(&mut buffer, what)?;
    Ok(buffer
        .chunks(per_node)
        .map(|node| node.chunks(PIECES).map(join).collect())
        .collect())
}

/// Checks that every node holds the same `fingerprint` (of what `what` names); returns each
/// node's `rows`.
///
/// # Errors
/// [`Error::Nodes`] naming the first node that disagrees with node 0; the collective's.
pub fn agree(
    collective: &dyn Collective,
    what: &str,
    fingerprint: u64,
    rows: usize,
) -> Result<Vec<usize>> {
    let all = gather(collective, &[fingerprint, rows as u64], what)?;
    if let Some(node) = all.iter().position(|v| v[0] != all[0][0]) {
        return Err(Error::Nodes {
            message: format!(
                "node {node} has another {what} ({:016x}) than node 0 ({:016x}): start every \
                 node with the same pipeline.toml, data and kiln build",
                all[node][0], all[0][0]
            ),
        });
    }
    Ok(all
        .iter()
        .map(|v| usize::try_from(v[1]).unwrap_or(usize::MAX))
        .collect())
}

/// Whether row `row` of the data belongs to node `rank` of `nodes`: a hash of the row's
/// index, so each node's shard is fixed by the data and not by the split's order.
pub fn owns_row(row: usize, rank: usize, nodes: usize) -> bool {
    let hash = blake3::hash(&(row as u64).to_le_bytes());
    u64::from_le_bytes(
        hash.as_bytes()
            .first_chunk::<8>()
            .copied()
            .unwrap_or_default(),
    ) % nodes as u64
        == rank as u64
}

/// Test doubles: nodes as threads of one process.
#[cfg(test)]
pub(crate) mod threads {
    use std::sync::{Arc, Barrier, Mutex};

    use super::Collective;
    use crate::Result;

    /// One node of a group whose sums meet in shared memory.
    pub(crate) struct ThreadNode {
        rank: usize,
        nodes: usize,
        shared: Arc<(Mutex<Vec<Vec<f32>>>, Barrier)>,
    }

    /// `nodes` connected nodes, one per thread that will use it.
    pub(crate) fn group(nodes: usize) -> Vec<ThreadNode> {
        let shared = Arc::new((Mutex::new(vec![Vec::new(); nodes]), Barrier::new(nodes)));
        (0..nodes)
            .map(|rank| ThreadNode {
                rank,
                nodes,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    impl Collective for ThreadNode {
        fn rank(&self) -> usize {
            self.rank
        }

        fn nodes(&self) -> usize {
            self.nodes
        }

        fn sum(&self, values: &mut [f32], _what: &str) -> Result<()> {
            let (slots, barrier) = &*self.shared;
            slots.lock().expect("no panics")[self.rank] = values.to_vec();
            barrier.wait();
            // In rank order on every node: the same bits everywhere, as MPI's sum gives.
            {
                let slots = slots.lock().expect("no panics");
                for (i, value) in values.iter_mut().enumerate() {
                    *value = slots.iter().map(|s| s[i]).sum();
                }
            }
            barrier.wait();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_carries_full_u64s_and_agree_names_the_odd_node() {
        let nodes = threads::group(3);
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|node| {
                    scope.spawn(move || {
                        let rank = node.rank() as u64;
                        let values = gather(node, &[u64::MAX - rank, rank << 40], "test").unwrap();
                        let fingerprint = if rank == 2 { 7 } else { 5 };
                        let agreed = agree(node, "pipeline", fingerprint, 10 + node.rank());
                        (values, agreed)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (values, agreed) in results {
            assert_eq!(
                values,
                (0..3u64)
                    .map(|r| vec![u64::MAX - r, r << 40])
                    .collect::<Vec<_>>()
            );
            let message = agreed.unwrap_err().to_string();
            assert!(message.contains("node 2 has another pipeline"), "{message}");
        }
    }

    #[test]
    fn row_ownership_is_a_partition_of_about_equal_shards() {
        let rows = 10_000;
        let counts: Vec<usize> = (0..3)
            .map(|rank| (0..rows).filter(|&r| owns_row(r, rank, 3)).count())
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), rows);
        for count in counts {
            assert!((3_100..3_570).contains(&count), "{count}");
        }
    }
}
