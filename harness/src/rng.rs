//! Every random choice of a run comes from the run's seed, through one ChaCha stream per
//! consumer (the nemesis, each client), so that `harness replay` regenerates the same operations
//! and the same fault schedule however the streams interleave in time.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The nemesis schedule's stream.
pub const NEMESIS_STREAM: u64 = 0;

/// Client `k`'s operations come from stream `CLIENT_STREAM_BASE + k`.
pub const CLIENT_STREAM_BASE: u64 = 1_000;

/// The random stream `stream` of `seed`.
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The stream of client `client`.
pub fn client_stream(seed: u64, client: u64) -> ChaCha8Rng {
    stream(seed, CLIENT_STREAM_BASE + client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(stream(9, 1), |r, _: i32| Some(r.gen()))
            .collect();
        let b: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(stream(9, 1), |r, _: i32| Some(r.gen()))
            .collect();
        let c: Vec<u32> = (0..4)
            .map(|_| 0)
            .scan(stream(9, 2), |r, _: i32| Some(r.gen()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
