//! Producer id allocation for InitProducerId. Ids are handed out from blocks whose upper end
//! is made durable (`<log.dirs>/.esker-config/producer-id-block`) before any id of the block is
//! used, so an id is never reused after a restart or a crash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Ids reserved per durable write.
const BLOCK: i64 = 1000;

/// Allocates producer ids.
pub struct ProducerIds {
    path: PathBuf,
    /// (next id, end of the durable block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// Opens the allocator; the next id is the end of the last reserved block.
    pub fn open(log_dir: &Path) -> std::io::Result<ProducerIds> {
        let dir = log_dir.join(".esker-config");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("producer-id-block");
        let end = match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse::<i64>().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} does not hold a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIds {
            path,
            state: Mutex::new((end, end)),
        })
    }

    /// A fresh producer id.
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 >= s.1 {
            let end = s.1 + BLOCK;
            let tmp = self.path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)?;
            writeln!(f, "{end}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            s.1 = end;
        }
        let id = s.0;
        s.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIds::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIds::open(dir.path()).unwrap();
        assert_eq!(b.allocate().unwrap(), BLOCK);
    }
}
