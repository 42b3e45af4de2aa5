//! Start-up and shutdown as a user sees them: the `esker` binary refuses bad configuration
//! naming the key, and SIGTERM shuts it down cleanly (exit 0, clean-shutdown marker written,
//! removed again by the next start).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (arg, key) in [
        ("no.such.key=1", "no.such.key"),
        ("num.partitions=many", "num.partitions"),
        ("message.max.bytes=-1", "message.max.bytes"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_esker"))
            .args([
                "-o",
                &format!("log.dirs={}", dir.path().display()),
                "-o",
                arg,
            ])
            .output()
            .expect("run esker");
        assert!(!out.status.success(), "{arg} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key),
            "error for {arg} names the key: {stderr}"
        );
    }
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let start = || {
        let child = Command::new(env!("CARGO_BIN_EXE_esker"))
            .args([
                "-o",
                &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                "-o",
                &format!("log.dirs={}", dir.path().display()),
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn esker");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let marker = dir.path().join(".kafka_cleanshutdown");
    for _ in 0..2 {
        let mut child = start();
        assert!(
            !marker.exists(),
            "a running broker has no clean-shutdown marker"
        );
        // An idle connection must not hold shutdown up.
        let _idle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait");
        assert!(status.success(), "exit status after SIGTERM: {status}");
        assert!(marker.exists(), "clean shutdown writes the marker");
        assert!(dir.path().join("meta.properties").exists());
    }
}
