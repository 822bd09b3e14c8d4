//! The settings of the simulator.

use std::time::Duration;

/// How the simulator behaves. `Default` gives the API gateway's documented values.
#[derive(Debug, Clone)]
pub struct RomaConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Added before every ROMA and IAM answer (not the control API).
    pub latency: Duration,
    /// Lifetime of tokens issued by `/v3/auth/tokens` (IAM: 24 h).
    pub token_ttl: Duration,
    /// Largest accepted difference between `X-Sdk-Date` and the simulator's clock (15 min).
    pub max_clock_skew: Duration,
    /// Consecutive AK/SK failures that lock an access key (5).
    pub lock_threshold: u32,
    /// How long a locked access key stays locked (5 min).
    pub lock_duration: Duration,
}

impl Default for RomaConfig {
    fn default() -> Self {
        Self {
            port: 0,
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(24 * 3600),
            max_clock_skew: Duration::from_secs(15 * 60),
            lock_threshold: 5,
            lock_duration: Duration::from_secs(5 * 60),
        }
    }
}
