//! `faultline bench lab`: what the namespace lab and its faults cost, so a run's fault
//! schedule is never late because of them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use faultline_nemesis::{
    Action, Fault, FaultKind, Isolation, Lab, LabConfig, NodeCommand, NodeSelection, PartitionKind,
};
use rand::SeedableRng;

use super::{stop_on_signal, tempfile_dir};

/// The steps of one run on a lab of `nodes`, in the order they are taken and printed.
fn steps(nodes: usize) -> [String; 9] {
    [
        "build the lab".to_string(),
        "start a process on every node".to_string(),
        format!("partition ({})", partition(nodes).1),
        "heal the partition".to_string(),
        "kill every node".to_string(),
        "restart every node".to_string(),
        "pause every node".to_string(),
        "resume every node".to_string(),
        "tear the lab down".to_string(),
    ]
}

pub(super) fn lab(nodes: usize, runs: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        nodes >= 2,
        "--nodes {nodes}: the lab bench partitions the nodes, so it needs 2 or more"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // A signal ends the bench after the run in progress, whose lab is torn down as usual.
    let stopped = stop_on_signal(&runtime)?;
    let steps = steps(nodes);
    let mut took: Vec<Vec<Duration>> = vec![Vec::new(); steps.len()];
    let mut done = 0;
    while done < runs && !stopped.load(Ordering::SeqCst) {
        done += 1;
        let dir = tempfile_dir()?;
        let times = runtime.block_on(one_run(nodes, &dir));
        let _ = std::fs::remove_dir_all(&dir);
        for (step, time) in times?.into_iter().enumerate() {
            took[step].push(time);
        }
    }
    anyhow::ensure!(
        !took[0].is_empty(),
        "interrupted before the first run ended; its lab was torn down"
    );
    println!("lab: {nodes} nodes in network namespaces, runs: {done} (min / median / max)");
    for (step, times) in steps.iter().zip(&mut took) {
        times.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        println!(
            "  {step:<32} {:>8.1} / {:>8.1} / {:>8.1} ms",
            ms(&times[0]),
            ms(&times[times.len() / 2]),
            ms(&times[times.len() - 1])
        );
    }
    Ok(())
}

/// The partition a lab of `nodes` is put under: Jepsen's majorities ring where it can be
/// (4+ nodes), else halves.
fn partition(nodes: usize) -> (PartitionKind, &'static str) {
    if nodes >= 4 {
        (PartitionKind::MajoritiesRing, "majorities ring")
    } else {
        (PartitionKind::Halves, "halves")
    }
}

/// One lab through every step; the time of each, in [`steps`] order. The lab is torn down
/// also when a step fails.
async fn one_run(nodes: usize, dir: &std::path::Path) -> anyhow::Result<Vec<Duration>> {
    let started = Instant::now();
    let lab = Lab::create(LabConfig {
        nodes,
        isolation: Isolation::Namespaces,
        run_dir: dir.to_path_buf(),
    })
    .await
    .context("building the lab")?;
    let mut times = vec![started.elapsed()];
    let steps = faults(&lab, dir, &mut times).await;
    let started = Instant::now();
    let torn = lab.teardown().await;
    times.push(started.elapsed());
    steps?;
    torn.context("tearing the lab down")?;
    Ok(times)
}

/// Starts a process on every node, then puts each fault on all of them and takes it off,
/// pushing the time of every step.
async fn faults(lab: &Lab, dir: &std::path::Path, times: &mut Vec<Duration>) -> anyhow::Result<()> {
    let started = Instant::now();
    for node in lab.nodes() {
        // Bounded by itself should the lab's teardown never come.
        let command = NodeCommand {
            program: "sleep".into(),
            args: vec!["600".into()],
            env: Vec::new(),
            log_path: dir.join(format!("{node}.log")),
            faketime: false,
        };
        lab.start_node(&node, command)
            .await
            .with_context(|| format!("starting sleep on {node}"))?;
    }
    times.push(started.elapsed());
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let all = || NodeSelection::All;
    for (fault, kind) in [
        (
            Fault::Partition(partition(lab.nodes().len()).0),
            FaultKind::Partition,
        ),
        (Fault::Kill(all()), FaultKind::Kill),
        (Fault::Pause(all()), FaultKind::Pause),
    ] {
        let started = Instant::now();
        let action = lab.start_fault(&fault, &mut rng, None).await?;
        if let Action::Skipped(why) = action {
            anyhow::bail!("the lab skipped {kind}: {why}");
        }
        times.push(started.elapsed());
        let started = Instant::now();
        lab.stop_fault(kind).await?;
        times.push(started.elapsed());
    }
    Ok(())
}
