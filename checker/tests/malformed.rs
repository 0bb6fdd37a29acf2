//! Damaged histories never panic the checker: real histories of every format and model we read, cut,
//! shuffled and spliced with stray tokens, are either read and decided or refused with an
//! error that names the file (and, for a malformed JSONL line, its number). The report of
//! whatever was read is written too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faultline_checker::check::check_events;
use faultline_checker::history::PairingError;
use faultline_checker::report::write_report;
use faultline_checker::synth::{SynthSpec, TxnSpec, write_history, write_txn_history};
use faultline_checker::{CheckOptions, Error, Format, load_history_as};
use proptest::prelude::*;

fn datasets() -> PathBuf {
    std::env::var_os("FAULTLINE_DATASETS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        PathBuf::from,
    )
}

/// One small history of each format, each with the parts readers trip on: info and fail
/// completions, crashed processes, nemesis events, (for EDN) vectors of values, and a lock.
/// How many histories [`seeds`] gives.
const SEEDS: usize = 7;

fn seeds() -> Vec<(Format, String)> {
    let dataset = |file: &str| {
        std::fs::read_to_string(datasets().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let mut jsonl = Vec::new();
    write_history(
        &SynthSpec {
            ops: 40,
            procs: 4,
            keys: 2,
            crash: 0.15,
            unique: true,
            stale_read: false,
            register_only: false,
            seed: 7,
        },
        &mut jsonl,
    )
    .expect("writing to memory");
    let mut jsonl = String::from_utf8(jsonl).expect("synth writes UTF-8");
    let mut txns = Vec::new();
    write_txn_history(
        &TxnSpec {
            ops: 30,
            procs: 3,
            registers: 2,
            crash: 0.15,
            unique: false,
            stale_read: true,
            torn_read: false,
            seed: 7,
        },
        &mut txns,
    )
    .expect("writing to memory");
    let txns = String::from_utf8(txns).expect("synth writes UTF-8");
    for (index, time, f) in [
        (1000, 5_000_000, "start-partition"),
        (1001, 9_000_000, "stop-partition"),
    ] {
        jsonl.push_str(&format!(
            "{{\"index\":{index},\"time\":{time},\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"{f}\",\"value\":{{\"description\":\"isolate n1\"}}}}\n"
        ));
    }
    let seeds = vec![
        (Format::Jsonl, jsonl),
        (
            Format::JepsenLog,
            dataset("porcupine/test_data/jepsen/etcd_000.log"),
        ),
        (
            Format::Edn,
            dataset("knossos/data/cas-register/bad/rethink-fail-minimal.edn"),
        ),
        (Format::Edn, dataset("porcupine/test_data/kv/c01-ok.txt")),
        (Format::Edn, dataset("knossos/data/mutex/bad/etcd.edn")),
        (
            Format::Edn,
            dataset("knossos/data/multi-register/good/multi-register.edn"),
        ),
        (Format::Jsonl, txns),
    ];
    assert_eq!(seeds.len(), SEEDS);
    seeds
}

/// Text that readers give meaning to, so a splice lands on a parser's edge cases rather than
/// only on its "not a token" error.
const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\n",
    "\\",
    "nil",
    "null",
    "true",
    ":ok",
    ":info",
    ":fail",
    ":invoke",
    ":read",
    ":write",
    ":cas",
    ":value",
    ":process",
    ":time",
    ":type",
    "-1",
    "0",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "1e400",
    "NaN",
    "\"\\u0000\"",
    "#{}",
    "[1 2 3]",
    "[1]",
    "\"nemesis\"",
    "\"f\":\"start\"",
    "\"time\":0",
    "\"type\":\"info\"",
    "\"process\":0",
    "é",
    "😀",
    ";",
    "#_",
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n",
];

#[derive(Clone, Debug)]
enum Damage {
    /// Keep only this share of the text (per mille), cut at a character boundary.
    Truncate(u16),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Put a token at this share of the text (per mille).
    Splice(u16, usize),
    /// Cut out this many characters from this share of the text (per mille).
    Cut(u16, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0u16..1000).prop_map(Damage::Truncate),
        any::<usize>().prop_map(Damage::DeleteLine),
        any::<usize>().prop_map(Damage::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::SwapLines(a, b)),
        (0u16..1000, 0..TOKENS.len()).prop_map(|(at, token)| Damage::Splice(at, token)),
        (0u16..1000, 1u8..40).prop_map(|(at, n)| Damage::Cut(at, n)),
    ]
}

/// The byte offset of the character boundary nearest below `per_mille` of `text`.
fn boundary(text: &str, per_mille: u16) -> usize {
    let mut at = text.len() * usize::from(per_mille) / 1000;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, damage: &Damage) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let line = |i: usize| i % lines.len().max(1);
    match *damage {
        Damage::Truncate(keep) => return text[..boundary(text, keep)].to_string(),
        Damage::Splice(at, token) => {
            let at = boundary(text, at);
            return format!("{}{}{}", &text[..at], TOKENS[token], &text[at..]);
        }
        Damage::Cut(at, n) => {
            let start = boundary(text, at);
            let end = text[start..]
                .char_indices()
                .nth(usize::from(n))
                .map_or(text.len(), |(i, _)| start + i);
            return format!("{}{}", &text[..start], &text[end..]);
        }
        _ if lines.is_empty() => {}
        Damage::DeleteLine(i) => {
            lines.remove(line(i));
        }
        Damage::DuplicateLine(i) => {
            let i = line(i);
            lines.insert(i, lines[i]);
        }
        Damage::SwapLines(a, b) => {
            let (a, b) = (line(a), line(b));
            lines.swap(a, b);
        }
    }
    lines.concat()
}

/// What became of a damaged history.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Refused while reading: not UTF-8 (or not gzip), or a line that is not its format's.
    Unreadable,
    /// Read, but its events do not pair up, or do not fit the model.
    Refused,
    /// Read and checked (and reported, if asked).
    Checked,
}

/// Read `bytes` from a file as `faultline check` does (`history.jsonl.gz` is decompressed),
/// check them and, when `report` is set, write the report. Panics if the checker does, or if
/// an error does not say where the input is wrong.
fn read_check_and_report(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    format: Option<Format>,
    report: bool,
) -> Outcome {
    let file = dir.join(name);
    std::fs::write(&file, bytes).expect("writing the damaged history");
    // A line number must point into the text (a last line without a newline counts).
    let lines = bytes.split(|&b| b == b'\n').count();
    let in_the_text = |line: usize| name.ends_with(".gz") || (1..=lines).contains(&line);
    let history = match load_history_as(&file, format) {
        Ok(history) => history,
        Err(Error::InFile { path, error }) => {
            assert_eq!(path, file);
            match *error {
                Error::Malformed { line, .. } => {
                    assert!(in_the_text(line), "line {line} of {lines}: {error}")
                }
                ref other => panic!("reading gave an error that is not about a line: {other}"),
            }
            return Outcome::Unreadable;
        }
        Err(Error::Io { path, source }) => {
            assert_eq!(path, file);
            // Only bytes that are not text (or not gzip) fail before a line is read.
            if !name.ends_with(".gz") {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{source}");
            }
            return Outcome::Unreadable;
        }
        Err(other) => panic!("an error that names neither file nor line: {other}"),
    };
    let options = CheckOptions {
        semantics: history.format.semantics(),
        time_limit: Duration::from_millis(500),
        ..CheckOptions::default()
    };
    let checked = match check_events(&history.events, &options) {
        Ok(checked) => checked,
        Err(Error::Pairing(pairing)) => {
            let line = match pairing {
                PairingError::OverlappingInvoke { line, .. }
                | PairingError::OrphanCompletion { line, .. }
                | PairingError::MismatchedCompletion { line, .. } => line,
                ref other => panic!("a pairing error without a line: {other}"),
            };
            assert!(in_the_text(line), "line {line} of {lines}: {pairing}");
            return Outcome::Refused;
        }
        // A damaged kv history can mix in register operations, and the other way round.
        Err(Error::UnsupportedOperation { .. }) => return Outcome::Refused,
        Err(other) => panic!("checking gave an unexpected error: {other}"),
    };
    if report {
        write_report(&dir.join("report"), &history, &checked, None)
            .unwrap_or_else(|e| panic!("the report of a history that was read failed: {e}"));
    }
    Outcome::Checked
}

fn damaged(seed: usize, damages: &[Damage]) -> (Format, String) {
    let (format, text) = seeds().swap_remove(seed);
    (format, damages.iter().fold(text, |text, d| apply(&text, d)))
}

/// The damage starts from histories that are read, checked and reported whole.
#[test]
fn every_seed_is_checked_and_reported_undamaged() {
    for (format, text) in seeds() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let outcome =
            read_check_and_report(dir.path(), "history", text.as_bytes(), Some(format), true);
        assert_eq!(
            outcome,
            Outcome::Checked,
            "{}",
            &text[..text.len().min(300)]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn damaged_histories_are_read_or_refused_never_panic(
        seed in 0usize..SEEDS,
        damages in prop::collection::vec(damage(), 1..5),
        detect in any::<bool>(),
    ) {
        let (format, text) = damaged(seed, &damages);
        let dir = tempfile::tempdir().expect("a temporary directory");
        read_check_and_report(dir.path(), "history", text.as_bytes(), (!detect).then_some(format), false);
    }

    #[test]
    fn a_byte_that_is_not_utf8_makes_a_history_unreadable(
        seed in 0usize..SEEDS,
        at in 0u16..1000,
        byte in 0x80u8..=0xff,
    ) {
        let (_, text) = seeds().swap_remove(seed);
        let at = boundary(&text, at);
        let mut bytes = text.into_bytes();
        // A byte of 0x80 or more on its own, between two characters, is never UTF-8.
        bytes.insert(at, byte);
        let dir = tempfile::tempdir().expect("a temporary directory");
        prop_assert_eq!(read_check_and_report(dir.path(), "history", &bytes, None, false), Outcome::Unreadable);
    }

    #[test]
    fn damaged_gzip_is_read_or_refused_never_panic(
        damages in prop::collection::vec(damage(), 0..3),
        keep in 0u16..=1000,
        flip in any::<Option<(u16, u8)>>(),
    ) {
        let (_, text) = damaged(0, &damages);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text.as_bytes()).expect("compressing to memory");
        let mut bytes = gz.finish().expect("compressing to memory");
        bytes.truncate(bytes.len() * usize::from(keep) / 1000);
        if let Some((at, mask)) = flip.filter(|_| !bytes.is_empty()) {
            let at = (bytes.len() - 1) * usize::from(at) / usize::from(u16::MAX);
            bytes[at] ^= mask;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        read_check_and_report(dir.path(), "history.jsonl.gz", &bytes, None, false);
    }
}

proptest! {
    // Plots take a while; fewer cases, for what only the report reads (the nemesis lines).
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn damaged_histories_that_are_read_get_a_report(
        seed in 0usize..SEEDS,
        damages in prop::collection::vec(damage(), 1..3),
    ) {
        let (format, text) = damaged(seed, &damages);
        let dir = tempfile::tempdir().expect("a temporary directory");
        read_check_and_report(dir.path(), "history", text.as_bytes(), Some(format), true);
    }
}
