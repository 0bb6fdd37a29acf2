//! `faultline check` as a user runs it: verdict lines, exit codes, bad input.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

fn write(dir: &Path, name: &str, lines: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).expect("write history");
    path
}

const VALID: &[&str] = &[
    r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}"#,
    r#"{"index":1,"time":5,"process":0,"type":"ok","f":"write","key":"a","value":1}"#,
    r#"{"index":2,"time":6,"process":1,"type":"invoke","f":"read","key":"a","value":null}"#,
    r#"{"index":3,"time":7,"process":1,"type":"ok","f":"read","key":"a","value":1}"#,
];

const STALE: &[&str] = &[
    r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}"#,
    r#"{"index":1,"time":1,"process":0,"type":"ok","f":"write","key":"a","value":1}"#,
    r#"{"index":2,"time":2,"process":0,"type":"invoke","f":"write","key":"a","value":2}"#,
    r#"{"index":3,"time":3,"process":0,"type":"ok","f":"write","key":"a","value":2}"#,
    r#"{"index":4,"time":4,"process":1,"type":"invoke","f":"read","key":"a","value":null,"node":"n2"}"#,
    r#"{"index":5,"time":5,"process":1,"type":"ok","f":"read","key":"a","value":1,"node":"n2"}"#,
];

fn faultline() -> Command {
    Command::cargo_bin("faultline").expect("faultline binary is built")
}

/// `faultline synth PATH` with `args`, then `extra`.
fn synth_to(path: &Path, args: &[&str], extra: &[&str]) -> Output {
    faultline()
        .arg("synth")
        .arg(path)
        .args(args)
        .args(extra)
        .output()
        .expect("runs")
}

/// `faultline check PATH` with `flags` after it.
fn check(path: &Path, flags: &[&str]) -> Output {
    faultline()
        .arg("check")
        .arg(path)
        .args(flags)
        .output()
        .expect("runs")
}

/// What `faultline check --json` printed.
fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("json on stdout")
}

/// `faultline check --json PATH`: its exit code and the JSON it printed.
fn check_json(path: &Path) -> (Option<i32>, Value) {
    let out = check(path, &["--json"]);
    (out.status.code(), stdout_json(&out))
}

/// The history synth wrote at `path` checks valid (as it must, by construction) under `model`.
fn assert_valid_by_construction(path: &Path, model: &str) {
    let (code, json) = check_json(path);
    assert_eq!(code, Some(0), "valid by construction");
    assert_eq!(json[0]["model"], model);
}

/// `faultline check --json PATH` finds `what` a violation (exit 1); the JSON it printed.
fn violation_json(path: &Path, what: &str) -> Value {
    let (code, json) = check_json(path);
    assert_eq!(code, Some(1), "{what} is a violation");
    json
}

/// The sentence that explains the first counterexample of the first history checked.
fn first_explanation(json: &Value) -> &str {
    json[0]["counterexamples"][0]["explanation"]
        .as_str()
        .unwrap_or_default()
}

/// `faultline synth` said it ended the history in `what` (`a stale read of r0`, …).
fn assert_planted(synth: &Output, what: &str) {
    assert!(
        String::from_utf8_lossy(&synth.stdout).contains(&format!("ending in {what}")),
        "{synth:?}"
    );
}

/// `out` is an error (exit 3) whose stderr says each of `says`. Returns the stderr.
fn assert_refused(out: &Output, says: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    for text in says {
        assert!(stderr.contains(text), "no {text:?} in:\n{stderr}");
    }
    stderr
}

#[test]
fn valid_history_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&write(dir.path(), "h.jsonl", VALID), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": valid ("));
}

#[test]
fn stale_read_exits_one_and_explains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&write(dir.path(), "h.jsonl", STALE), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "read of a on n2 returned 1 at 0.000 s, but 1 had been overwritten by write 2"
        ),
        "{stdout}"
    );
}

#[test]
fn several_files_exit_with_the_worst_and_json_is_an_array() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.jsonl", VALID);
    let bad = write(dir.path(), "bad.jsonl", STALE);
    let out = faultline()
        .args(["check", "--json"])
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let json = stdout_json(&out);
    assert_eq!(json[0]["valid"], true);
    assert_eq!(json[1]["valid"], false);
}

#[test]
fn run_directory_gets_results_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "history.jsonl", STALE);
    let out = check(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let results: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).expect("written"))
            .expect("json");
    assert_eq!(results["valid"], false);
    assert_eq!(results["counterexamples"][0]["key"], "a");
}

#[test]
fn malformed_line_exits_three_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&write(dir.path(), "h.jsonl", &[VALID[0], "{not json"]), &[]);
    assert_refused(&out, &["h.jsonl: line 2: expected a JSON history event"]);
}

#[test]
fn a_missing_file_exits_three_and_says_why_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nowhere.jsonl");
    let stderr = assert_refused(
        &check(&missing, &[]),
        &["give a history file or a run directory", "nowhere.jsonl"],
    );
    let os_cause = std::fs::read(&missing).expect_err("missing").to_string();
    assert_eq!(stderr.matches(os_cause.as_str()).count(), 1, "{stderr}");
    assert!(!stderr.contains("--format"), "{stderr}");
}

/// A crashed writer's last line: left out with a warning naming it, the rest checked.
#[test]
fn a_cut_off_last_line_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let next =
        r#"{"index":6,"time":9,"process":2,"type":"invoke","f":"write","key":"a","value":3}"#;
    let cut = &next[..30];
    for (lines, verdict) in [(VALID, 0), (STALE, 1)] {
        let mut lines = lines.to_vec();
        lines.push(cut);
        let out = check(&write(dir.path(), "h.jsonl", &lines), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(verdict), "{stderr}");
        let warned = format!("line {} is cut off", lines.len());
        assert!(stderr.contains(&warned), "{stderr}");
    }
}

/// `faultline check … | head -1`: the reader goes away, the rest is still checked and the
/// exit code is the worst verdict, with no panic. A thousand verdict lines overflow the
/// pipe's buffer, so the closed pipe is certainly hit.
#[test]
fn a_closed_stdout_does_not_stop_the_checks_or_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let valid = write(dir.path(), "valid.jsonl", VALID);
    let stale = write(dir.path(), "stale.jsonl", STALE);
    let mut args = vec![valid.clone(); 999];
    args.push(stale);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("faultline"))
        .arg("check")
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

/// The semantics a format implies can be overridden: the initial value, what a failed CAS
/// says, and whether a nil read constrains anything.
#[test]
fn semantics_flags_override_the_formats_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let verdict = |name: &str, lines: &[&str], flags: &[&str]| {
        check(&write(dir.path(), name, lines), flags).status.code()
    };
    let read_zero = &[
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"read","key":"a","value":null}"#,
        r#"{"index":1,"time":1,"process":0,"type":"ok","f":"read","key":"a","value":0}"#,
    ];
    assert_eq!(verdict("zero.jsonl", read_zero, &[]), Some(1));
    assert_eq!(
        verdict("zero.jsonl", read_zero, &["--initial", "0"]),
        Some(0)
    );
    let failed_cas = &[
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}"#,
        r#"{"index":1,"time":1,"process":0,"type":"ok","f":"write","key":"a","value":1}"#,
        r#"{"index":2,"time":2,"process":0,"type":"invoke","f":"cas","key":"a","value":[1,2]}"#,
        r#"{"index":3,"time":3,"process":0,"type":"fail","f":"cas","key":"a","value":[1,2],"error":"no leader"}"#,
    ];
    assert_eq!(verdict("cas.jsonl", failed_cas, &[]), Some(0));
    assert_eq!(
        verdict("cas.jsonl", failed_cas, &["--failed-cas", "mismatch"]),
        Some(1)
    );
    let nil_after_write = &[
        r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"write","key":"a","value":1}"#,
        r#"{"index":1,"time":1,"process":0,"type":"ok","f":"write","key":"a","value":1}"#,
        r#"{"index":2,"time":2,"process":0,"type":"invoke","f":"read","key":"a","value":null}"#,
        r#"{"index":3,"time":3,"process":0,"type":"ok","f":"read","key":"a","value":null}"#,
    ];
    assert_eq!(verdict("nil.jsonl", nil_after_write, &[]), Some(1));
    assert_eq!(
        verdict(
            "nil.jsonl",
            nil_after_write,
            &["--nil-reads", "unconstrained"]
        ),
        Some(0)
    );
    let out = check(Path::new("x.jsonl"), &["--initial", "zero"]);
    assert_eq!(out.status.code(), Some(3), "a bad flag is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("give `nil`"));
}

#[test]
fn synth_plants_only_a_read_that_is_certainly_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("h.jsonl");
    let synth = |extra: &[&str]| {
        let args = ["--ops", "2000", "--keys", "1", "--crash", "0.5"];
        synth_to(&out_path, &args, &[&["--stale-read"], extra].concat())
    };
    // Values repeat and half the ops crash: every value has a crashed writer, which may have
    // taken effect last, so no read of any value is certainly stale.
    assert_refused(&synth(&[]), &["no stale read could be planted", "--unique"]);
    let planted = synth(&["--unique"]);
    assert_eq!(planted.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&planted.stdout);
    assert!(stdout.contains("ending in a stale read of k0"), "{stdout}");
    let checked = check(&out_path, &[]);
    assert_eq!(
        checked.status.code(),
        Some(1),
        "the planted read is a violation"
    );
}

/// `--jobs` sets the checking threads. A key with many operations running at once and crashed
/// writes is out of time at 0.2 s either way, and its reason says how its two search orders
/// ran: in turns on one thread, raced on two. `--jobs 0` is refused. (The history must stay
/// far out of reach within the limit: 50 clients and 20,000 operations, once out of reach in
/// 1 s, are now decided within it; 100 clients and 100,000 take 11 s in a release build.)
#[test]
fn jobs_sets_the_threads_and_a_free_one_lets_a_key_race_its_search_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.jsonl");
    let synth = synth_to(
        &path,
        &["--ops", "100000", "--keys", "1", "--procs", "100"],
        &["--crash", "0.05", "--seed", "1"],
    );
    assert_eq!(synth.status.code(), Some(0));
    for (jobs, how) in [
        ("1", "in the last of three turns"),
        (
            "2",
            "; completed writes first, raced beside it: time limit reached",
        ),
    ] {
        let out = check(&path, &["--time-limit", "0.2", "--json", "--jobs", jobs]);
        assert_eq!(out.status.code(), Some(2), "--jobs {jobs}: unknown");
        let json = stdout_json(&out);
        let reason = json[0]["keys"]["k0"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(how), "--jobs {jobs}: {reason}");
    }
    assert_refused(&check(&path, &["--jobs", "0"]), &["--jobs"]);
}

#[test]
fn a_lock_history_is_checked_as_a_mutex_and_register_ops_are_refused_under_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lock = write(
        dir.path(),
        "lock.jsonl",
        &[
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"acquire","value":null}"#,
            r#"{"index":1,"time":1000000,"process":0,"type":"ok","f":"acquire","value":null}"#,
            r#"{"index":2,"time":2000000,"process":1,"type":"invoke","f":"acquire","value":null}"#,
            r#"{"index":3,"time":3000000,"process":1,"type":"ok","f":"acquire","value":null}"#,
        ],
    );
    let (code, json) = check_json(&lock);
    assert_eq!(code, Some(1));
    assert_eq!(json[0]["model"], "mutex");
    assert_eq!(
        json[0]["counterexamples"][0]["explanation"],
        "acquire of the lock by process 1 succeeded at 0.003 s, but acquire by process 0 had \
         succeeded at 0.001 s and no release had begun by then, so the lock cannot have been \
         free for both"
    );
    // A lock history with a read in it: no model fits, and the error says so.
    let acquire = [
        r#"{"index":10,"time":0,"process":9,"type":"invoke","f":"acquire","value":null}"#,
        r#"{"index":11,"time":1,"process":9,"type":"ok","f":"acquire","value":null}"#,
    ];
    let mixed: Vec<&str> = acquire.iter().chain(VALID).copied().collect();
    let mixed = write(dir.path(), "mixed.jsonl", &mixed);
    assert_refused(
        &check(&mixed, &[]),
        &["no model checks lock and register operations together"],
    );
    let registers = write(dir.path(), "h.jsonl", VALID);
    assert_refused(
        &check(&registers, &["--model", "mutex"]),
        &["is not part of the `mutex` model; check with --model cas-register"],
    );
}

#[test]
fn synth_writes_lock_histories_valid_or_with_a_double_acquire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locks.jsonl");
    let synth = |extra: &[&str]| {
        synth_to(
            &path,
            &["--lock", "--ops", "3000", "--keys", "2", "--crash", "0.05"],
            extra,
        )
    };
    assert_eq!(synth(&[]).status.code(), Some(0));
    assert_valid_by_construction(&path, "mutex");
    assert_planted(&synth(&["--double-acquire"]), "a double acquire of l0");
    let json = violation_json(&path, "the double acquire");
    assert_eq!(json[0]["counterexamples"][0]["key"], "l0");
    // Register-only flags do not apply to locks.
    assert_eq!(synth(&["--unique"]).status.code(), Some(3));
}

#[test]
fn transactions_are_checked_as_a_multi_register_and_the_report_shows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Process 1 reads y before process 0's transaction wrote it, but x after: half of it.
    // Refuted before any search, with process 0 cited.
    let half = write(
        dir.path(),
        "half.jsonl",
        &[
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":1,"time":1000000,"process":1,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}"#,
            r#"{"index":2,"time":2000000,"process":0,"type":"ok","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":3,"time":3000000,"process":1,"type":"ok","f":"txn","value":[["r","x",1],["r","y",null]]}"#,
        ],
    );
    let (code, json) = check_json(&half);
    assert_eq!(code, Some(1));
    let c = &json[0]["counterexamples"][0];
    assert!(
        c["explanation"].as_str().is_some_and(|s| s.contains(
            "but only the transaction by process 0 leaves x = 1, so it came first, and it left y = 1"
        )),
        "{c}"
    );
    assert_eq!(c["evidence"][0]["process"], 0, "{c}");
    // With process 2 writing the same, neither writer alone must come first: the search
    // refutes it, and the report shows the registers along its longest prefix.
    let torn = write(
        dir.path(),
        "txn.jsonl",
        &[
            r#"{"index":0,"time":0,"process":0,"type":"invoke","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":1,"time":0,"process":2,"type":"invoke","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":2,"time":1000000,"process":1,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}"#,
            r#"{"index":3,"time":2000000,"process":0,"type":"ok","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":4,"time":2000000,"process":2,"type":"ok","f":"txn","value":[["w","x",1],["w","y",1]]}"#,
            r#"{"index":5,"time":3000000,"process":1,"type":"ok","f":"txn","value":[["r","x",1],["r","y",null]]}"#,
        ],
    );
    let report = dir.path().join("report");
    let report_flag = report.to_str().expect("utf-8 path");
    let out = check(&torn, &["--json", "--report", report_flag]);
    assert_eq!(out.status.code(), Some(1));
    let json = stdout_json(&out);
    assert_eq!(json[0]["model"], "multi-register");
    let c = &json[0]["counterexamples"][0];
    assert_eq!(
        c["op"]["value"],
        serde_json::json!([["read", "x", 1], ["read", "y", null]])
    );
    assert_eq!(
        c["prefix"][0]["registers_after"],
        serde_json::json!({"x": 1, "y": 1})
    );
    assert!(
        c["explanation"].as_str().is_some_and(
            |s| s.ends_with("its read of y returned nothing (absent), where y holds 1")
        ),
        "{c}"
    );
    let page = std::fs::read_to_string(report.join("report.html")).expect("report written");
    assert!(
        page.contains("txn read x 1, read y nil"),
        "the stuck transaction, labelled"
    );
    assert!(
        page.contains("x=1 y=1"),
        "the registers after the prefix's step"
    );
    // Under another model, or mixed with single-register operations, it is refused.
    assert_refused(
        &check(
            &write(dir.path(), "h.jsonl", VALID),
            &["--model", "multi-register"],
        ),
        &["is not part of the `multi-register` model"],
    );
}

#[test]
fn synth_writes_transaction_histories_valid_or_with_a_stale_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("txns.jsonl");
    let synth = |extra: &[&str]| {
        synth_to(
            &path,
            &["--txn", "--ops", "3000", "--keys", "3", "--crash", "0.05"],
            extra,
        )
    };
    assert_eq!(synth(&[]).status.code(), Some(0));
    assert_valid_by_construction(&path, "multi-register");
    assert_planted(&synth(&["--unique", "--stale-read"]), "a stale read of r0");
    let json = violation_json(&path, "the stale read");
    assert_eq!(json[0]["counterexamples"][0]["key"], "");
    // With values that repeat, a stale read is refuted before any search: the writers of
    // the value it returned were all overwritten before it began.
    synth(&["--stale-read"]);
    let json = violation_json(&path, "the stale read of a repeated value");
    let sentence = first_explanation(&json);
    assert!(
        sentence.contains("read r0 = ") && sentence.contains(", before the read began at "),
        "{sentence}"
    );
    // A torn read is refuted before any search too, values repeating and some crashed.
    assert_planted(&synth(&["--torn-read"]), "a torn read of r0 and r1");
    let json = violation_json(&path, "the torn read");
    let sentence = first_explanation(&json);
    assert!(
        sentence.contains(", so it came first, and it left r1 = "),
        "{sentence}"
    );
    let one_register = synth_to(&path, &["--txn", "--keys", "1", "--torn-read"], &[]);
    assert_refused(&one_register, &["give --keys 2 or more"]);
    // Out of time the search says `unknown`, and a history without key names names none.
    let long = ["--txn", "--ops", "30000", "--keys", "3", "--crash", "0.05"];
    assert_eq!(synth_to(&path, &long, &[]).status.code(), Some(0));
    let out = check(&path, &["--time-limit", "0.001"]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\n  unknown: time limit reached after"),
        "{stdout}"
    );
    // Lock-only and register-only flags do not apply to transactions.
    assert_eq!(synth(&["--lock"]).status.code(), Some(3));
    assert_eq!(synth(&["--register"]).status.code(), Some(3));
}
