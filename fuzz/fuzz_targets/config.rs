//! `server.properties` as the broker reads it at start-up: `Config::load` with the
//! properties text and `--override key=value` arguments, every key validated against the
//! table in `esker::config`.
//!
//! Input: the properties text, then (after a NUL byte, if any) one override per line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, overrides) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let overrides: Vec<String> = String::from_utf8_lossy(overrides)
        .lines()
        .map(str::to_string)
        .collect();
    if let Ok(config) = esker::Config::load(&text, &overrides) {
        // What a loaded config is used for first: its derived settings.
        let _ = config.log_config();
        let _ = config.dynamic_configs();
    }
});
