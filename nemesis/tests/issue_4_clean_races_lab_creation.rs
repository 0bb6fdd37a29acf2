//! Regression (issue 4): `clean` deleted the namespaces of a lab that was still being built
//! (it read state files before listing namespaces, and could read a claimed state file while
//! still empty). The invariant: a tight loop of cleans while labs are built and torn down
//! never breaks a lab. The original window is microseconds wide, so this test guards the
//! invariant broadly rather than reproducing that exact interleaving every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common::*;

#[tokio::test]
#[ignore = "needs root, nftables, libfaketime: run by scripts/test.sh"]
async fn cleans_in_a_loop_never_break_labs_being_built() {
    let stop = Arc::new(AtomicBool::new(false));
    let cleans = Arc::new(AtomicUsize::new(0));
    let cleaner = {
        let (stop, cleans) = (stop.clone(), cleans.clone());
        std::thread::spawn(move || {
            // Bounded: at most 10 000 cleans, and it ends when the builder is done.
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                faultline_nemesis::clean().expect("clean");
                cleans.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let lab = lab(3, &dir.path().join(round.to_string())).await;
        // Every namespace is still there and usable after the cleans that ran meanwhile.
        assert_eq!(namespaces_of(lab.name()).len(), 5, "round {round}");
        assert_eq!(lab.guard_packets().await.unwrap(), Some(0));
        lab.teardown().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    cleaner.join().unwrap();
    assert!(cleans.load(Ordering::Relaxed) >= 8, "the cleaner ran");
}
