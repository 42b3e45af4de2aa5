//! Record batches as a producer (or a leader, for a follower) sends them: the v2 batch
//! validation (`log::batch::validate`, `validate_stored`), the record walk, the compacted
//! topic's key check, and the log's append path (`PartitionLog::append` /
//! `append_replica`) into a log in a temporary directory, read back afterwards.
//!
//! The first input byte chooses: bit 0 a compacted log (keys checked, compressed batches
//! decompressed), bit 1 LogAppendTime, bit 2 a leader epoch stamped on appends, bit 3 the
//! follower's `append_replica` instead of `append`, bit 4 recomputes each batch's CRC-32C first
//! (so that mutations reach what lies behind the checksum). The rest is the batches.
#![no_main]

use std::sync::{Mutex, OnceLock};

use esker::log::{batch, compact, LogConfig, PartitionLog};
use libfuzzer_sys::fuzz_target;

struct Logs {
    plain: PartitionLog,
    compacted: PartitionLog,
}

fn logs() -> &'static Mutex<Logs> {
    static L: OnceLock<Mutex<Logs>> = OnceLock::new();
    L.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("esker-fuzz-partition-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let config = LogConfig {
            segment_bytes: 64 * 1024,
            segment_index_bytes: 4096,
            index_interval_bytes: 512,
            ..LogConfig::default()
        };
        let compacted = LogConfig {
            compact: true,
            ..config.clone()
        };
        Mutex::new(Logs {
            plain: PartitionLog::open(&dir.join("t-0"), config, true).expect("open log"),
            compacted: PartitionLog::open(&dir.join("c-0"), compacted, true).expect("open log"),
        })
    })
}

/// Rewrites the CRC-32C of every whole batch in `buf` (attributes to the end of the batch).
fn fix_crcs(buf: &mut [u8]) {
    let mut pos = 0;
    while buf.len() - pos >= batch::HEADER_LEN {
        let len = i32::from_be_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
        let Some(size) = usize::try_from(len).ok().and_then(|l| l.checked_add(12)) else {
            return;
        };
        if size < batch::HEADER_LEN || size > buf.len() - pos {
            return;
        }
        let crc = crc32c::crc32c(&buf[pos + 21..pos + size]);
        buf[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
        pos += size;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, records)) = data.split_first() else {
        return;
    };
    let mut owned;
    let records = if flags & 16 != 0 {
        owned = records.to_vec();
        fix_crcs(&mut owned);
        &owned[..]
    } else {
        records
    };
    // The parsers on their own.
    let _ = batch::validate(records);
    let _ = batch::validate_stored(records);
    for item in batch::batches(records) {
        let Ok((_, bytes)) = item else { break };
        if let Ok(iter) = batch::records(bytes) {
            for r in iter {
                let Ok(r) = r else { break };
                for h in r.headers() {
                    let _ = h;
                }
            }
        }
        let _ = batch::txn_marker(bytes);
    }
    let _ = compact::check_keys(records);

    // The append path, then the read back.
    let mut guard = logs().lock().unwrap_or_else(|e| e.into_inner());
    let log = if flags & 1 == 1 {
        &mut guard.compacted
    } else {
        &mut guard.plain
    };
    if log.size_bytes() > 4 << 20 || log.log_end_offset() > 1 << 40 {
        log.truncate_fully_and_start_at(0).expect("restart log");
    }
    if flags & 4 != 0 && log.latest_epoch().is_none() {
        let _ = log.assign_leader_epoch(1);
    }
    let append_time = (flags & 2 != 0).then_some(1_700_000_000_000);
    let appended = if flags & 8 != 0 {
        log.append_replica(bytes::Bytes::copy_from_slice(records))
    } else {
        log.append(bytes::Bytes::copy_from_slice(records), append_time)
    };
    if let Ok(info) = appended {
        if info.record_count > 0 {
            let read = log
                .read(info.base_offset, 1 << 20)
                .expect("an appended batch reads back");
            for item in batch::batches(&read.records) {
                let (_, bytes) = item.expect("stored batches parse");
                batch::validate_stored(bytes).expect("stored batches validate");
            }
        }
    }
});
