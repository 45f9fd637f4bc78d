//! One writing handle per change log (issue 16), in this process and across processes. Its own
//! test binary: the test spawns a child process (this binary again, running the ignored helper
//! below), and a fork in one test of a binary briefly holds every descriptor of the others,
//! locks included, which would make a parallel test's reopen see its own lock.

use std::time::{Duration, UNIX_EPOCH};

use replicore::ErrorKind;
use replicore::log::{ChangeLog, DiskSpec, LogConfig, MarkerKind, ResyncThreshold, SyncPolicy};

fn config() -> LogConfig {
    LogConfig::new("vm-01", vec![DiskSpec::new("os", 1 << 20)])
}

fn t(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// One writing handle per log (issue 16): a second open or create of a log that a handle holds,
/// in this process or another, is Locked and names the holder; the lock holds across a rotation
/// and goes with the handle and with its process. (Two handles once lost every record written
/// through the second.)
#[test]
fn a_log_has_one_writer_in_this_process_and_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.rclog");
    let mut log = ChangeLog::create(&path, &config()).unwrap();
    let open = || ChangeLog::open(&path, None, SyncPolicy::Manual, ResyncThreshold::default());
    let e = open().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{e}"
    );
    // Creating over it: the file exists, whoever holds it.
    assert_eq!(
        ChangeLog::create(&path, &config()).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    log.record_write(0, 0, b"first").unwrap();
    log.mark_at(MarkerKind::Crash, "", t(1)).unwrap();
    log.rotate(dir.path().join("sealed.rclog")).unwrap();
    assert_eq!(open().unwrap_err().kind(), ErrorKind::Locked);
    drop(log);
    let (log, _) = open().unwrap();

    // Another process holds it: this test binary again, running the ignored helper below.
    drop(log);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "hold_a_log_until_stdin_closes",
            "--nocapture",
        ])
        .env("REPLICORE_TEST_LOG", &path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the child ended"
        );
    }
    let e = open().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    assert!(
        e.to_string().contains(&format!("process {}", child.id())),
        "{e}"
    );
    drop(child.stdin.take()); // the child closes its log and exits
    assert!(child.wait().unwrap().success());
    open().unwrap();
}

/// Run by `a_log_has_one_writer_in_this_process_and_others` in a child process: opens the log
/// named by REPLICORE_TEST_LOG, says so, and holds it until its standard input closes.
#[test]
#[ignore = "a helper process of a_log_has_one_writer_in_this_process_and_others"]
fn hold_a_log_until_stdin_closes() {
    let path = std::env::var_os("REPLICORE_TEST_LOG").expect("run by the parent test");
    let (_log, _) =
        ChangeLog::open(&path, None, SyncPolicy::Manual, ResyncThreshold::default()).unwrap();
    println!("holding");
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest).unwrap();
}
