//! Teardown runs on every path: SIGTERM (through `shutdown_signal`) and panics.

use std::io::BufRead;
use std::time::Duration;

use crate::common::*;

const CHILD: &str = "FAULTLINE_TEST_SIGNAL_CHILD";

/// Waits for SIGTERM with a lab up, then tears down. Alone it signals itself; as the child
/// of `sigterm_from_outside_tears_the_lab_down` it waits for the parent's signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn sigterm_ends_the_run_and_teardown_runs() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab(2, dir.path()).await;
    let pid = lab
        .start_node("n1", echo_server(&lab, "n1", 7800, false))
        .await
        .unwrap();
    let name = lab.name().to_string();
    let shutdown = faultline_nemesis::shutdown_signal().unwrap();
    if std::env::var_os(CHILD).is_some() {
        println!("READY {name} {pid}");
    } else {
        nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
    }
    tokio::select! {
        _ = shutdown => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => panic!("no SIGTERM within 30 s"),
    }
    lab.teardown().await.unwrap();
    assert!(namespaces_of(&name).is_empty());
    assert!(!process_alive(pid));
    println!("TORN-DOWN {name}");
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn sigterm_from_outside_tears_the_lab_down() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "teardown::sigterm_ends_the_run_and_teardown_runs",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let ready = lines
        .by_ref()
        .take(100)
        .find(|l| l.starts_with("READY "))
        .expect("child reports its lab");
    let name = ready.split_whitespace().nth(1).unwrap().to_string();
    let raw = i32::try_from(child.id()).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Read to the end: closing the pipe early would make the child's own output fail.
    let rest: Vec<String> = lines.take(1000).collect();
    let torn = rest.contains(&format!("TORN-DOWN {name}"));
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(torn && status.success(), "child: {status:?}\n{stderr}");
    assert!(namespaces_of(&name).is_empty());
    assert!(!nft_tables().contains(&format!("{name}_guard")));
    assert!(
        !faultline_nemesis::state_dir()
            .join(format!("{name}.json"))
            .exists()
    );
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn a_panic_with_a_lab_up_still_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let lab = lab(2, dir.path()).await;
            let pid = lab
                .start_node("n2", echo_server(&lab, "n2", 7801, false))
                .await
                .unwrap();
            *record.lock().unwrap() = Some((lab.name().to_string(), pid));
            panic!("a bug in the middle of a run");
        })
    }));
    assert!(result.is_err());
    let (name, pid) = seen.lock().unwrap().clone().unwrap();
    assert!(namespaces_of(&name).is_empty());
    assert!(!nft_tables().contains(&format!("{name}_guard")));
    for _ in 0..100 {
        if !process_alive(pid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!process_alive(pid));
}
