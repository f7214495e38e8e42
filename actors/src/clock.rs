//! Wall-clock time as the engines record it: Unix milliseconds (timestamps in answers, task
//! deadlines, cache expiry), so that it means the same after a restart.

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
