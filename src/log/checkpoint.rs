//! The two per-partition offset checkpoint files.
//!
//! ```text
//! <topic>-<partition>/
//!   log-start-offset        0\n<offset>\n   written and fsynced whenever DeleteRecords moves
//!                                           the log start offset into a segment
//!   recovery-point-offset   0\n<offset>\n   every offset below it is on disk (fsynced); written
//!                                           periodically and on close, without fsync
//! ```
//!
//! Kafka keeps one `log-start-offset-checkpoint` and one `recovery-point-offset-checkpoint` per
//! log directory. Esker keeps one file of each per partition instead, so a file lives and dies
//! with its partition directory (a topic deleted and created again under the same name cannot
//! inherit a stale entry) and shards never share a file. The first line is a format version.
//!
//! Both are written to `<name>.tmp` and renamed over the old file. The recovery point is not
//! fsynced: it only ever names data that was already fsynced, so losing the newest write costs a
//! longer scan at the next unclean start, never data; a file that does not parse is ignored (a
//! full scan). The exception is a truncation lowering it: the old value would name data that
//! no longer exists, and data written there afterwards would be trusted on its word after a
//! crash, so the lowered value is fsynced before the truncation starts. The log start offset is
//! fsynced (file and directory) before DeleteRecords (or a follower's restart of the log) is
//! answered, because losing it would bring deleted records back.
//!
//! [`write_atomic`] also writes the `leader-epoch-checkpoint` (see the `leader_epoch` module).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use tracing::warn;

/// File holding the log start offset when it lies above the first segment's base offset.
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// File holding the recovery point.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset";

const VERSION: &str = "0";

/// Reads an offset checkpoint; `None` if it is missing or malformed (a malformed one is logged).
pub(crate) fn read(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            warn!(path = %path.display(), "offset checkpoint is not text; ignoring it");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next(), lines.next()) {
        (Some(VERSION), Some(offset), None) => offset.parse::<i64>().ok().filter(|o| *o >= 0),
        _ => None,
    };
    if parsed.is_none() {
        warn!(path = %path.display(), "malformed offset checkpoint; ignoring it");
    }
    Ok(parsed)
}

/// Writes an offset checkpoint by renaming a temporary file over it. With `durable`, the file
/// and then the directory are fsynced, so the new value survives a crash once this returns.
pub(crate) fn write(dir: &Path, name: &str, offset: i64, durable: bool) -> io::Result<()> {
    write_atomic(
        dir,
        name,
        format!("{VERSION}\n{offset}\n").as_bytes(),
        durable,
    )
}

/// Replaces `dir/name` with `contents`: written to `<name>.tmp`, then renamed over the old
/// file, so a reader sees the old or the new contents, never a mix. With `durable`, the file is
/// fsynced before the rename and the directory after it.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    contents: &[u8],
    durable: bool,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(contents)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert_eq!(read(dir.path(), LOG_START_FILE)?, None);
        write(dir.path(), LOG_START_FILE, 42, true)?;
        assert_eq!(read(dir.path(), LOG_START_FILE)?, Some(42));
        write(dir.path(), LOG_START_FILE, 7, false)?;
        assert_eq!(read(dir.path(), LOG_START_FILE)?, Some(7));
        for garbage in [
            &b""[..],
            b"0\n",
            b"1\n5\n",
            b"0\n-3\n",
            b"0\n12\0\0",
            b"\xff\xfe",
        ] {
            std::fs::write(dir.path().join(RECOVERY_POINT_FILE), garbage)?;
            assert_eq!(read(dir.path(), RECOVERY_POINT_FILE)?, None, "{garbage:?}");
        }
        Ok(())
    }
}
