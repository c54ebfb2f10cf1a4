//! Retry delay: exponential with full jitter over the upper half, capped.

use std::time::Duration;

/// Delay before attempt `attempt + 1`, after `attempt` (1-based) failed: `base * 2^(attempt-1)`
/// capped at `max`, then a random point in its upper half, so retries of many jobs spread out.
pub fn retry_delay(attempt: i32, base: Duration, max: Duration, unit_random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    let raw = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    let jitter = 0.5 + 0.5 * unit_random.clamp(0.0, 1.0);
    raw.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_stops_at_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(retry_delay(1, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, base, max, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, base, max, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(30, base, max, 1.0), max);
        assert_eq!(retry_delay(i32::MAX, base, max, 1.0), max);
        assert_eq!(retry_delay(0, base, max, 1.0), base);
    }
}
