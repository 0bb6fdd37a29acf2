//! A non-root user gets the same namespace lab by re-executing inside a user namespace.

use crate::common::*;

const CHILD: &str = "FAULTLINE_TEST_USERNS_CHILD";

/// As root, builds a lab normally. As the `nobody` child of
/// `non_root_user_builds_the_lab_inside_a_user_namespace`, first re-executes itself inside
/// a user namespace, then builds the lab there and reports.
#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn lab_in_whatever_namespace_we_are_root_of() {
    if std::env::var_os(CHILD).is_some() {
        faultline_nemesis::ensure_root_or_reexec().expect("re-exec");
        assert!(faultline_nemesis::in_user_namespace());
    }
    assert!(faultline_nemesis::is_root());
    let dir = tempfile::tempdir().unwrap();
    let setup = tokio::runtime::Runtime::new().unwrap();
    let lab = setup.block_on(lab(2, dir.path()));
    setup
        .block_on(lab.start_node("n1", echo_server(&lab, "n1", 7600, false)))
        .unwrap();
    wait_echo(&lab.client_netns(), lab.node_ip("n1"), 7600);
    let clients = lab.client_runtime(1).unwrap();
    let ip = lab.node_ip("n1");
    let connected = clients
        .block_on(
            clients.spawn(async move { tokio::net::TcpStream::connect((ip, 7600)).await.is_ok() }),
        )
        .unwrap();
    assert!(connected);
    assert_eq!(setup.block_on(lab.guard_packets()).unwrap(), Some(0));
    drop(clients);
    setup.block_on(lab.teardown()).unwrap();
    println!(
        "LAB-OK in_userns={}",
        faultline_nemesis::in_user_namespace()
    );
}

#[test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
fn non_root_user_builds_the_lab_inside_a_user_namespace() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "userns::lab_in_whatever_namespace_we_are_root_of",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("TMPDIR", "/tmp")
        .env_remove("FAULTLINE_STATE_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        .current_dir("/tmp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("LAB-OK in_userns=true"),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}
