//! Seeded, named RNG streams.
//!
//! Each consumer of randomness (split, shuffling, initialization …) draws from its own stream,
//! derived from the run seed and the stream's name, so adding randomness in one stage never
//! shifts another stage's numbers. ChaCha8 is portable and its output is fixed across versions
//! of `rand_chacha`, unlike `StdRng`.

use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng;

/// The RNG for `name` under `seed`.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(name.as_bytes());
    ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
}

/// A uniform sample of at most `capacity` items from a stream of unknown length (Algorithm
/// R), seeded: the same stream and seed keep the same items. Memory is `capacity` items
/// however long the stream.
#[derive(Debug, Clone)]
pub struct Reservoir<T> {
    items: Vec<T>,
    capacity: usize,
    seen: u64,
    rng: ChaCha8Rng,
}

impl<T> Reservoir<T> {
    /// An empty sample of at most `capacity` items, drawn from `rng`.
    pub fn new(capacity: usize, rng: ChaCha8Rng) -> Self {
        Self {
            items: Vec::new(),
            capacity,
            seen: 0,
            rng,
        }
    }

    /// Offers the next item of the stream; `make` runs only when the item is kept.
    pub fn offer(&mut self, make: impl FnOnce() -> T) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(make());
            return;
        }
        let slot = rand::RngExt::random_range(&mut self.rng, 0..self.seen);
        if let Some(kept) = usize::try_from(slot)
            .ok()
            .and_then(|slot| self.items.get_mut(slot))
        {
            *kept = make();
        }
    }

    /// Items offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The sample.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_independent() {
        let a: [u64; 4] = stream(7, "split").random();
        let b: [u64; 4] = stream(7, "split").random();
        let c: [u64; 4] = stream(7, "shuffle").random();
        let d: [u64; 4] = stream(8, "split").random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn reservoir_keeps_a_bounded_seeded_sample() {
        let sample = |seed| {
            let mut r = Reservoir::new(100, stream(seed, "r"));
            for i in 0..10_000 {
                r.offer(|| i);
            }
            assert_eq!(r.seen(), 10_000);
            r.into_items()
        };
        let a = sample(1);
        assert_eq!(a.len(), 100);
        assert_eq!(a, sample(1));
        assert_ne!(a, sample(2));
        // Uniform: the sample's mean is near the stream's (5000 ± a few standard errors).
        let mean = a.iter().sum::<i32>() / 100;
        assert!((3500..6500).contains(&mean), "{mean}");
    }
}
