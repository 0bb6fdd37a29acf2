//! The report of a checked history: each plot renders as a PNG of the expected size and an SVG
//! carrying the fault labels; the page explains a violation and escapes hostile input.

use std::path::Path;

use faultline_checker::check::check_events;
use faultline_checker::report::{ReportFiles, plots, write_report};
use faultline_checker::synth::{SynthSpec, write_history};
use faultline_checker::{CheckOptions, CheckReport, Verdict, load_history};

/// A synthetic history with two faults (one healed, one still open at the end) in `dir`.
fn history_with_faults(dir: &Path, stale_read: bool, key_prefix: &str) -> std::path::PathBuf {
    history_of(dir, 4_000, stale_read, key_prefix)
}

fn history_of(dir: &Path, ops: u64, stale_read: bool, key_prefix: &str) -> std::path::PathBuf {
    let spec = SynthSpec {
        ops,
        procs: 6,
        keys: 3,
        crash: 0.01,
        unique: true,
        stale_read,
        register_only: false,
        seed: 3,
    };
    let mut out = Vec::new();
    write_history(&spec, &mut out).expect("synth writes");
    let mut text = String::from_utf8(out).expect("utf-8");
    if !key_prefix.is_empty() {
        text = text.replace("\"key\":\"k", &format!("\"key\":\"{key_prefix}k"));
    }
    let last = text.lines().count();
    text.push_str(&format!(
        "{{\"index\":{last},\"time\":100000000,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":{{\"description\":\"isolate n3 <b>from</b> all\"}}}}\n\
         {{\"index\":{},\"time\":300000000,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"stop-partition\",\"value\":{{\"description\":\"heal\"}}}}\n\
         {{\"index\":{},\"time\":400000000,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-kill\",\"value\":{{\"description\":\"kill n1\"}}}}\n",
        last + 1,
        last + 2
    ));
    let path = dir.join("history.jsonl");
    std::fs::write(&path, text).expect("write history");
    path
}

/// Whether an SVG written by plotters has a text element saying exactly `text`.
fn has_text(svg: &str, text: &str) -> bool {
    svg.contains(&format!(">\n{text}\n</text>")) || svg.contains(&format!(">{text}</text>"))
}

fn png_size(path: &Path) -> (u32, u32) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{} decodes: {e}", path.display()));
    (image.width(), image.height())
}

#[test]
fn every_plot_is_a_png_of_the_expected_size_and_an_svg_with_the_fault_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = history_with_faults(dir.path(), false, "");
    let history = load_history(&path).expect("loads");
    let report = check_events(&history.events, &CheckOptions::default()).expect("checks");
    assert_eq!(report.verdict(), Verdict::Valid);
    let out = dir.path().join("report");
    let files = write_report(&out, &history, &report, None).expect("report written");
    assert_eq!(files.plots.len(), 6);
    for name in ["latency-raw", "latency-quantiles", "rate"] {
        let png = out.join(format!("{name}.png"));
        assert_eq!(png_size(&png), (plots::WIDTH, plots::HEIGHT), "{name}.png");
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).expect("svg");
        assert!(svg.starts_with("<svg"), "{name}.svg is an SVG");
        assert!(svg.contains("kill n1"), "{name}.svg names the open fault");
        assert!(svg.contains("isolate n3"), "{name}.svg names the partition");
        assert!(!svg.contains("<b>"), "{name}.svg escapes fault labels");
        for legend in ["read", "write", "cas"] {
            if name == "latency-raw" {
                assert!(has_text(&svg, legend), "{name}.svg legend {legend}");
            }
        }
        let outcomes: &[&str] = match name {
            "latency-raw" => &["ok", "fail", "info (indeterminate)"],
            "rate" => &["ok", "fail", "info"],
            _ => &["p50", "p95", "p99", "max"],
        };
        for legend in outcomes {
            assert!(has_text(&svg, legend), "{name}.svg legend {legend}");
        }
    }
    let html = std::fs::read_to_string(&files.html).expect("html");
    assert!(html.contains("latency-raw.svg") && html.contains("valid"));
    assert_self_contained(&html);
    assert_eq!(
        html.matches("src=\"data:image/png;base64,iVBORw0KGgo")
            .count(),
        3,
        "the three plots are inside the page as PNGs"
    );
}

/// Nothing the page shows comes from elsewhere: every `src` is a `data:` URI, no stylesheet or
/// script is linked, and no address on the network is named.
fn assert_self_contained(html: &str) {
    for (at, _) in html.match_indices("src=") {
        let rest = &html[at..];
        assert!(
            rest.starts_with("src=\"data:"),
            "a resource not inside the page: {:.80}",
            rest
        );
    }
    assert!(!html.contains("<link"), "linked stylesheet");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "network address"
    );
}

#[test]
fn an_invalid_history_gets_its_counterexample_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = history_with_faults(dir.path(), true, "");
    let history = load_history(&path).expect("loads");
    let report = check_events(&history.events, &CheckOptions::default()).expect("checks");
    assert_eq!(report.verdict(), Verdict::Invalid);
    let files = write_report(dir.path(), &history, &report, None).expect("report written");
    let html = std::fs::read_to_string(&files.html).expect("html");
    assert!(
        html.contains("Why it is not linearizable"),
        "section present"
    );
    let explanation = &report.counterexamples[0].explanation;
    assert!(
        html.contains(explanation.as_str()),
        "the sentence is on the page: {explanation}"
    );
    assert!(
        html.contains("register after"),
        "the prefix table is on the page"
    );
}

#[test]
fn hostile_keys_and_labels_stay_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = r#"</script><img src=x onerror=alert(1)>"#;
    // JSON-escape the quote-free payload into the key.
    let path = history_with_faults(dir.path(), true, &hostile.replace('"', ""));
    let history = load_history(&path).expect("loads");
    let report = check_events(&history.events, &CheckOptions::default()).expect("checks");
    let files = write_report(dir.path(), &history, &report, None).expect("report written");
    let html = std::fs::read_to_string(&files.html).expect("html");
    assert!(
        !html.contains("<img src=x"),
        "raw markup from the history reached the page"
    );
    assert!(
        html.matches("</script>").count() == 2,
        "only the page's own two script elements close"
    );
    assert!(!html.contains("<b>from</b>"), "fault labels are escaped");
}

/// A Jepsen text log of `lines` (without the logger's prefix) in `dir`, checked, with the
/// report written to `dir/r`.
fn report_of_jepsen_log(dir: &Path, lines: &[&str]) -> (CheckReport, ReportFiles) {
    let path = dir.join("etcd.log");
    let text: String = lines
        .iter()
        .map(|l| format!("INFO  jepsen.util - {l}\n"))
        .collect();
    std::fs::write(&path, text).expect("write log");
    let history = load_history(&path).expect("loads");
    let report = check_events(&history.events, &CheckOptions::default()).expect("checks");
    let files = write_report(&dir.join("r"), &history, &report, None).expect("written");
    (report, files)
}

#[test]
fn a_jepsen_log_without_times_gets_a_page_but_no_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, files) = report_of_jepsen_log(
        dir.path(),
        &[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t1",
        ],
    );
    assert!(files.plots.is_empty());
    assert!(
        std::fs::read_to_string(files.html)
            .expect("html")
            .contains("valid")
    );
}

/// An invalid history of one register: its counterexample is headed "The register" (it has no
/// key name), and the page lists the evidence the sentence cites.
#[test]
fn a_single_register_counterexample_is_named_and_lists_its_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (report, files) = report_of_jepsen_log(
        dir.path(),
        &[
            "0\t:invoke\t:write\t1",
            "0\t:ok\t:write\t1",
            "0\t:invoke\t:write\t2",
            "0\t:ok\t:write\t2",
            "1\t:invoke\t:read\tnil",
            "1\t:ok\t:read\t1",
        ],
    );
    assert_eq!(report.counterexamples[0].evidence.len(), 1, "{report:?}");
    let html = std::fs::read_to_string(files.html).expect("html");
    assert!(
        html.contains("<summary><b>The register</b></summary>"),
        "{html:.3000}"
    );
    let evidence = &html[html
        .find("<table class=\"evidence\">")
        .expect("an evidence table")..];
    assert!(evidence.contains("<td>write 2</td>"), "{evidence:.500}");
}

/// A lock's counterexample speaks of the lock: its heading, its prefix's states (free, held)
/// and its operations' labels; its latency plot draws acquires and releases.
#[test]
fn a_lock_counterexample_shows_the_lock_free_or_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    let lines = [
        (0, 0, "invoke", "acquire"),
        (1, 1_000_000, "ok", "acquire"),
        (2, 2_000_000, "invoke", "release"),
        (3, 3_000_000, "ok", "release"),
        (4, 4_000_000, "invoke", "acquire"),
        (5, 5_000_000, "ok", "acquire"),
        (6, 6_000_000, "invoke", "acquire"),
        (7, 7_000_000, "ok", "acquire"),
    ];
    let text: String = lines
        .iter()
        .map(|(index, time, kind, f)| {
            format!(
                "{{\"index\":{index},\"time\":{time},\"process\":{},\"type\":\"{kind}\",\"f\":\"{f}\",\"value\":null}}\n",
                index / 2
            )
        })
        .collect();
    std::fs::write(&path, text).expect("write history");
    let history = load_history(&path).expect("loads");
    let report = check_events(&history.events, &CheckOptions::default()).expect("checks");
    assert_eq!(report.verdict(), Verdict::Invalid);
    let files = write_report(&dir.path().join("r"), &history, &report, None).expect("written");
    let html = std::fs::read_to_string(&files.html).expect("html");
    assert!(
        html.contains("<summary><b>The lock</b></summary>"),
        "{html:.3000}"
    );
    assert!(html.contains("<th>lock after</th>"), "{html:.3000}");
    assert!(html.contains("<td class=\"num\">held</td>"), "{html:.3000}");
    assert!(html.contains("<td class=\"num\">free</td>"), "{html:.3000}");
    assert!(
        html.contains("<b>acquire by process 3 (ok)</b>"),
        "{html:.3000}"
    );
    // The timeline's prefix marks carry the same words as the table.
    assert!(html.contains(",\"held\"]"), "{html:.3000}");
    let svg = files
        .plots
        .iter()
        .find(|p| p.to_string_lossy().ends_with("latency-raw.svg"))
        .expect("the raw latency plot");
    let svg = std::fs::read_to_string(svg).expect("svg");
    assert!(
        has_text(&svg, "acquire") && has_text(&svg, "release"),
        "legend"
    );
    assert!(
        !has_text(&svg, "cas"),
        "no entry for what the history lacks"
    );
}

/// The figure in the README ("Reading the report"): how long the report of a 1e6-operation history takes
/// (checking it is timed separately, by the checker benchmarks). It prints the time and asserts
/// only what it drew; run it with
/// `cargo test --release -p faultline-checker --test report -- --ignored --nocapture`.
#[test]
#[ignore = "a timing: run it in release with --ignored --nocapture"]
fn time_the_report_of_a_million_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = history_of(dir.path(), 1_000_000, true, "");
    let started = std::time::Instant::now();
    let history = load_history(&path).expect("loads");
    let loaded = started.elapsed();
    // The report is what is timed: a short check budget keeps the test quick when CI runs
    // the ignored tests too (an unknown verdict draws the same plots and timeline).
    let options = CheckOptions {
        time_limit: std::time::Duration::from_secs(2),
        ..CheckOptions::default()
    };
    let report = check_events(&history.events, &options).expect("checks");
    let checked = started.elapsed();
    let files = write_report(&dir.path().join("r"), &history, &report, None).expect("written");
    let reported = started.elapsed();
    let html = std::fs::metadata(&files.html).expect("html").len();
    println!(
        "1e6 ops: load {:.2} s, check {:.2} s ({}), report {:.2} s (report.html {:.1} MB)",
        loaded.as_secs_f64(),
        (checked - loaded).as_secs_f64(),
        report.verdict(),
        (reported - checked).as_secs_f64(),
        html as f64 / 1e6
    );
    for file in &files.plots {
        let size = std::fs::metadata(file).expect("plot").len();
        println!("  {}: {:.1} kB", file.display(), size as f64 / 1e3);
    }
    assert_eq!(files.plots.len(), 6);
}
