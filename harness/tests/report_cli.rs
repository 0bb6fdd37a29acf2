//! Reports as users see them: `faultline check --report` and `faultline report` pages load in
//! headless Chromium without script errors and show the verdict (and the counterexample), and
//! `faultline serve` lists runs over real HTTP and refuses paths outside the results store.
//! Chromium comes from scripts/install-targets.sh (Debian's `chromium`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn faultline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
}

fn synth(out: &Path, stale: bool) {
    let mut cmd = faultline();
    cmd.args([
        "synth", "--ops", "3000", "--keys", "3", "--unique", "--crash", "0.01",
    ])
    .arg(out);
    if stale {
        cmd.arg("--stale-read");
    }
    assert!(cmd.status().expect("synth runs").success());
}

/// The DOM Chromium builds for `page`, after its scripts ran.
fn rendered_dom(page: &Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (install it with scripts/install-targets.sh)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `faultline check HISTORY --report DIR`: its exit code.
fn check_with_report(history: &Path, report_dir: &Path) -> Option<i32> {
    faultline()
        .arg("check")
        .arg(history)
        .arg("--report")
        .arg(report_dir)
        .status()
        .expect("check runs")
        .code()
}

/// The value of the first `name="…"` attribute in `html` at or after its start, unescaped.
fn attribute(html: &str, name: &str) -> Option<String> {
    html.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|value| value.replace("&quot;", "\""))
}

#[test]
fn report_pages_load_in_chromium_without_script_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (stale, verdict, code) in [(false, "valid", 0), (true, "invalid", 1)] {
        let history = dir.path().join(format!("{verdict}.jsonl"));
        synth(&history, stale);
        let report_dir = dir.path().join(format!("{verdict}-report"));
        assert_eq!(check_with_report(&history, &report_dir), Some(code));
        let dom = rendered_dom(&report_dir.join("report.html"));
        assert!(
            dom.contains("data-rendered=\"ok\""),
            "the timeline script did not finish:\n{dom:.2000}"
        );
        assert!(
            dom.contains("data-images=\"ok\""),
            "a plot did not decode, or the load handler did not run:\n{dom:.2000}"
        );
        // The attribute on <body>, not the script's own text that sets it.
        assert!(
            !dom.contains("data-script-error=\""),
            "script error: {dom:.2000}"
        );
        assert!(
            dom.contains(&format!("<div class=\"verdict\">{verdict}</div>")),
            "verdict banner"
        );
        if stale {
            assert!(
                dom.contains("Why it is not linearizable"),
                "counterexample section"
            );
            assert!(dom.contains("show the violation"), "timeline focus button");
            // The timeline opened on the first violation: its unplaceable op, some of the
            // prefix and the evidence the sentence cites are on the canvas, and the page
            // lists that evidence.
            let drawn = attribute(&dom, "data-drawn")
                .unwrap_or_else(|| panic!("the timeline says what it drew:\n{dom:.2000}"));
            assert!(drawn.contains(" 1 unplaceable, "), "{drawn}");
            assert!(!drawn.contains(" 0 prefix"), "{drawn}");
            assert!(
                drawn.ends_with(" evidence") && !drawn.ends_with(" 0 evidence"),
                "{drawn}"
            );
            assert!(dom.contains("<table class=\"evidence\">"), "{dom:.3000}");
        }
    }
}

/// `faultline serve` on an ephemeral port; killed by PID when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(results: &Path) -> Server {
    let mut child = faultline()
        .args(["serve", "--bind", "127.0.0.1:0", "--results"])
        .arg(results)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("serve prints its address");
    let address = line
        .split("http://")
        .nth(1)
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Server { child, address }
}

/// A raw HTTP/1.1 GET (so `..` reaches the server as typed); status code and body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("sends");
    let mut raw = Vec::new();
    // Bodies may be binary (PNG): read bytes, not a string.
    let _ = stream.read_to_end(&mut raw);
    let response = String::from_utf8_lossy(&raw).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn make_run(results: &Path, name: &str, stamp: &str, stale: bool) -> PathBuf {
    let dir = results.join(name).join(stamp);
    std::fs::create_dir_all(&dir).expect("run dir");
    synth(&dir.join("history.jsonl"), stale);
    let status = faultline()
        .arg("report")
        .arg(&dir)
        .status()
        .expect("report runs");
    assert_eq!(status.code(), Some(if stale { 1 } else { 0 }));
    dir
}

#[test]
fn serve_lists_runs_newest_first_and_refuses_paths_outside_the_results() {
    let root = tempfile::tempdir().expect("tempdir");
    let results = root.path().join("results");
    let older = make_run(&results, "raft-cas-register", "20261101T100000-000Z", false);
    make_run(&results, "raft-cas-register", "20261102T100000-000Z", true);
    std::fs::write(
        older.join("test.json"),
        r#"{"spec":{"target":"raft","workload":{"workload":"cas-register"}},"seed":7}"#,
    )
    .expect("test.json");
    let mut history = std::fs::OpenOptions::new()
        .append(true)
        .open(older.join("history.jsonl"))
        .expect("history");
    writeln!(
        history,
        r#"{{"index":9000,"time":1,"process":"nemesis","type":"info","f":"start-kill","value":{{"description":"kill n2"}}}}"#
    )
    .expect("append a fault");
    std::fs::write(root.path().join("secret.txt"), "do not serve").expect("secret");
    std::os::unix::fs::symlink(root.path(), results.join("escape")).expect("symlink");

    let server = serve(&results);
    let (code, index) = get(&server.address, "/");
    assert_eq!(code, 200);
    let newer = index
        .find("20261102T100000-000Z")
        .expect("newer run listed");
    let older = index
        .find("20261101T100000-000Z")
        .expect("older run listed");
    assert!(newer < older, "newest first");
    assert!(index.contains("invalid") && index.contains("valid"));
    let older_row = index
        .lines()
        .find(|l| l.contains("20261101T100000-000Z"))
        .expect("older row");
    for cell in [
        "<td>raft</td>",
        "<td>cas-register</td>",
        "<td>2026-11-01 10:00:00 UTC</td>",
        "<td class=\"num\">1</td></tr>",
    ] {
        assert!(older_row.contains(cell), "{cell} missing in {older_row}");
    }

    let (code, page) = get(
        &server.address,
        "/runs/raft-cas-register/20261102T100000-000Z/report.html",
    );
    assert_eq!(code, 200);
    assert!(page.contains("Why it is not linearizable"));
    let (code, _) = get(
        &server.address,
        "/runs/raft-cas-register/20261102T100000-000Z/rate.png",
    );
    assert_eq!(code, 200);

    for attack in [
        "/runs/../secret.txt",
        "/runs/%2e%2e/secret.txt",
        "/runs/raft-cas-register/..%2f..%2fsecret.txt",
        "/runs//etc/passwd",
        "/runs/escape/secret.txt",
    ] {
        let (code, body) = get(&server.address, attack);
        assert!(
            code == 403 || code == 404 || code == 400,
            "{attack}: {code}"
        );
        assert!(
            !body.contains("do not serve") && !body.contains("root:"),
            "{attack} leaked"
        );
    }
}

/// `faultline report` draws what results.json says (it does not re-check a stored run), checks
/// again when results.json is missing, unreadable, or `--recheck` is given.
#[test]
fn report_uses_the_stored_results_and_checks_again_only_when_it_must() {
    let root = tempfile::tempdir().expect("tempdir");
    let valid = make_run(
        root.path(),
        "raft-cas-register",
        "20261101T100000-000Z",
        false,
    );
    let invalid = root.path().join("invalid");
    std::fs::create_dir_all(&invalid).expect("run dir");
    synth(&invalid.join("history.jsonl"), true);
    let report = |extra: &[&str]| {
        let out = faultline()
            .arg("report")
            .arg(&invalid)
            .args(extra)
            .output()
            .expect("report runs");
        let html = std::fs::read_to_string(invalid.join("report.html")).expect("report.html");
        (
            out.status.code(),
            html,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // No results.json: checked, found invalid, results.json written.
    let (code, html, _) = report(&[]);
    assert_eq!(code, Some(1));
    assert!(html.contains("Why it is not linearizable"));
    assert!(invalid.join("results.json").is_file());

    // A stored verdict (here: another run's) is what the page shows.
    std::fs::copy(valid.join("results.json"), invalid.join("results.json")).expect("copy");
    let (code, html, _) = report(&[]);
    assert_eq!(code, Some(0), "the stored results.json was not used");
    assert!(!html.contains("Why it is not linearizable"));

    let (code, _, _) = report(&["--recheck"]);
    assert_eq!(code, Some(1), "--recheck checks the history again");

    std::fs::write(invalid.join("results.json"), "{not json").expect("corrupt");
    let (code, html, stderr) = report(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("checking the history again"), "{stderr}");
    assert!(html.contains("Why it is not linearizable"));
}

/// Markup that would mark the page if it ever ran.
const HOSTILE: &str =
    "</script><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">";

/// A history is untrusted input: keys, node names, errors and test.json fields carrying markup
/// must reach the browser as text. Chromium builds the DOM, so an escape that failed would
/// show up as an element (or as the attribute the payload sets).
#[test]
fn hostile_history_and_test_json_stay_text_in_chromium() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    let plain = dir.path().join("plain.jsonl");
    synth(&plain, true);
    let mut hostile = String::new();
    for line in std::fs::read_to_string(&plain).expect("history").lines() {
        let mut event: serde_json::Value = serde_json::from_str(line).expect("json line");
        if let Some(key) = event["key"].as_str() {
            event["key"] = format!("{HOSTILE}{key}").into();
            event["node"] = HOSTILE.into();
            event["error"] = HOSTILE.into();
        }
        hostile.push_str(&event.to_string());
        hostile.push('\n');
    }
    hostile.push_str(&format!(
        "{}\n",
        serde_json::json!({"index": 1_000_000, "time": 1_000_000, "process": "nemesis",
            "type": "info", "f": "start-partition", "value": {"description": HOSTILE}})
    ));
    std::fs::write(run.join("history.jsonl"), hostile).expect("write history");
    let test_json = serde_json::json!({
        "spec": {"target": HOSTILE, "nodes": 5, "nemesis": [HOSTILE], "workload": {"workload": HOSTILE}},
        "seed": HOSTILE,
        "versions": {"target": HOSTILE, "faultline": "0.1.0"},
    });
    std::fs::write(run.join("test.json"), test_json.to_string()).expect("test.json");
    let status = faultline()
        .arg("check")
        .arg(&run)
        .status()
        .expect("check runs");
    assert_eq!(status.code(), Some(1), "the planted stale read is found");
    let dom = rendered_dom(&run.join("report.html"));
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "script ran:\n{dom:.2000}"
    );
    assert!(
        !dom.contains("data-script-error=\""),
        "script error: {dom:.2000}"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "markup from the history became an element"
    );
    assert!(
        !dom.contains("data-pwned=\"1\""),
        "markup from the history ran"
    );
    assert!(
        dom.contains("&lt;/script&gt;&lt;img src=x"),
        "the hostile text is shown as text"
    );
}

fn datasets() -> PathBuf {
    std::env::var_os("FAULTLINE_DATASETS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        PathBuf::from,
    )
}

/// Histories from elsewhere: a Jepsen text log (no times: the timeline counts events, no plots)
/// and a Knossos EDN file, both single-register and invalid. Their pages render, and the
/// timeline draws the op that cannot be placed.
#[test]
fn dataset_reports_render_in_chromium_with_the_violation_on_the_timeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        "porcupine/test_data/jepsen/etcd_000.log",
        "knossos/data/cas-register/bad/cas-failure.edn",
    ] {
        let history = datasets().join(file);
        assert!(
            history.is_file(),
            "{} missing: set FAULTLINE_DATASETS",
            history.display()
        );
        let report_dir = dir.path().join(file.replace('/', "_"));
        assert_eq!(
            check_with_report(&history, &report_dir),
            Some(1),
            "{file} is invalid"
        );
        let dom = rendered_dom(&report_dir.join("report.html"));
        assert!(dom.contains("data-rendered=\"ok\""), "{file}:\n{dom:.2000}");
        assert!(!dom.contains("data-script-error=\""), "{file}: {dom:.2000}");
        assert!(dom.contains("data-images=\"ok\""), "{file}: {dom:.2000}");
        assert!(
            dom.contains(" 1 unplaceable, "),
            "{file}: the timeline does not show the violation:\n{dom:.3000}"
        );
    }
}

/// Fault labels on the timeline stay on the canvas: a fault that starts just before the end
/// has its label end at the right edge instead of running off it. The time axis is labelled
/// at round times.
#[test]
fn timeline_fault_labels_stay_on_the_canvas_and_ticks_are_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("history.jsonl");
    synth(&history, false);
    let mut text = std::fs::read_to_string(&history).expect("history");
    let times: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["time"].as_u64())
        .collect();
    let end = times.iter().copied().max().expect("timed events");
    let (early, late) = (end / 10, end - end / 100);
    let label = "halves: minority n4,n5 | majority n1,n2,n3";
    for (i, (time, f, description)) in [
        (early, "start-kill", "kill n1"),
        (late, "start-partition", label),
    ]
    .into_iter()
    .enumerate()
    {
        text.push_str(&format!(
            "{{\"index\":{},\"time\":{time},\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"{f}\",\"value\":{{\"description\":\"{description}\"}}}}\n",
            times.len() + i
        ));
    }
    std::fs::write(&history, text).expect("write history");
    let report_dir = dir.path().join("report");
    assert_eq!(check_with_report(&history, &report_dir), Some(0));
    let dom = rendered_dom(&report_dir.join("report.html"));
    assert!(dom.contains("data-rendered=\"ok\""), "{dom:.2000}");
    let canvas = &dom[dom.find("<canvas").expect("a canvas")..];
    let canvas_attribute = |name: &str| {
        attribute(canvas, name).unwrap_or_else(|| panic!("the canvas has no {name}: {canvas:.500}"))
    };
    let width: i64 = canvas_attribute("width").parse().expect("canvas width");
    let placed: Vec<(i64, i64)> =
        serde_json::from_str(&canvas_attribute("data-fault-labels")).expect("label positions");
    assert_eq!(placed.len(), 2, "{placed:?}");
    for (x, w) in &placed {
        assert!(
            *x >= 0 && x + w <= width,
            "a label at {x}..{} leaves the canvas (width {width}): {placed:?}",
            x + w
        );
    }
    let ticks: Vec<f64> = serde_json::from_str(&canvas_attribute("data-ticks")).expect("ticks");
    assert_round_ticks(&ticks);
}

/// Ticks that start at zero (the whole run is shown) and step by 1, 2 or 5 times a power of ten.
fn assert_round_ticks(ticks: &[f64]) {
    assert!(ticks.len() >= 5, "too few ticks: {ticks:?}");
    assert_eq!(ticks[0], 0.0, "{ticks:?}");
    let step = ticks[1] - ticks[0];
    let mantissa = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
        "step {step} is not 1, 2 or 5 times a power of ten: {ticks:?}"
    );
    for (i, tick) in ticks.iter().enumerate() {
        assert!(
            (tick - i as f64 * step).abs() < step * 1e-6,
            "tick {i} is {tick}, not {}: {ticks:?}",
            i as f64 * step
        );
    }
}
