//! Recognising a full file system and reporting storage failures without flooding the log.
//!
//! When the data directory's file system fills up, every produce to every partition fails the
//! same way, many times a second. The log layer already leaves the partition exactly at its
//! previous end when a write fails (the partial write is cut off again; a failed roll leaves the
//! active segment in place), so the broker keeps serving reads and accepts writes again as soon
//! as space returns. What it must not do meanwhile is write one log line per failed request:
//! [`RateLimited`] lets one line through per interval and counts the rest, and
//! [`is_out_of_space`] lets the line say plainly that the disk is full.
//!
//! Kafka takes the whole log directory offline on an `IOException` (its partitions move to
//! another directory or broker). Esker has one data directory and nowhere to move to, so it
//! answers KAFKA_STORAGE_ERROR for the partitions whose appends fail and resumes by itself;
//! only a failed fsync, after which the page cache may no longer match the disk, still poisons
//! the logs until a restart runs recovery.

use std::io;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whether `e` says the file system (or the user's quota on it) has no space left.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// A gate for a log line that may be wanted thousands of times a second: at most one line per
/// interval gets through, carrying the number of occurrences held back since the last one.
#[derive(Debug)]
pub struct RateLimited {
    interval_ms: i64,
    /// Wall-clock ms of the last line let through (0: none yet).
    last_ms: AtomicI64,
    suppressed: AtomicU64,
}

impl RateLimited {
    /// One line per `interval` at most.
    pub const fn new(interval: Duration) -> RateLimited {
        RateLimited {
            interval_ms: interval.as_millis() as i64,
            last_ms: AtomicI64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back)` if a line should be written now (with how many occurrences were held
    /// back since the last line), `None` if this occurrence is only counted.
    pub fn permit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.permit_at(now)
    }

    fn permit_at(&self, now_ms: i64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < self.interval_ms {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // One thread wins the slot; the others count.
        if self
            .last_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let gate = RateLimited::new(Duration::from_secs(10));
        assert_eq!(gate.permit_at(1_000), Some(0));
        assert_eq!(gate.permit_at(1_001), None);
        assert_eq!(gate.permit_at(10_999), None);
        assert_eq!(gate.permit_at(11_000), Some(2));
        assert_eq!(gate.permit_at(11_000), None);
        assert_eq!(gate.permit_at(30_000), Some(1));
    }

    #[test]
    fn enospc_and_edquot_are_out_of_space() {
        assert!(is_out_of_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(is_out_of_space(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_out_of_space(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_out_of_space(&io::Error::other("x")));
    }
}
