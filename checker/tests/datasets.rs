//! Every register / CAS-register history in `shared/datasets/MANIFEST.tsv` that the checker
//! reads gets its expected verdict (STYLE rule 15: one test per file, named after it).

use std::path::PathBuf;

use faultline_checker::{CheckOptions, Verdict, check_path};

fn datasets() -> PathBuf {
    std::env::var_os("FAULTLINE_DATASETS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets"),
        PathBuf::from,
    )
}

/// The manifest's expected verdict for `file`, so the test reads it instead of repeating it.
fn expected(file: &str) -> Verdict {
    let manifest = std::fs::read_to_string(datasets().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let row = manifest
        .lines()
        .find(|l| l.split('\t').next() == Some(file))
        .unwrap_or_else(|| panic!("{file} is not in the manifest"));
    match row.split('\t').nth(5) {
        Some("true") => Verdict::Valid,
        Some("false") => Verdict::Invalid,
        other => panic!("{file}: no expected verdict ({other:?})"),
    }
}

fn check(file: &str) {
    let report = check_path(&datasets().join(file), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        report.verdict(),
        expected(file),
        "{file}: {:?}",
        report.counterexamples
    );
}

// etcd_095.log is empty (etcd failed to start in that run); the manifest gives no verdict.
macro_rules! porcupine_etcd {
    ($($name:ident => $n:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            check(concat!("porcupine/test_data/jepsen/etcd_", $n, ".log"));
        }
    )*};
}

porcupine_etcd! {
    porcupine_etcd_000 => "000", porcupine_etcd_001 => "001", porcupine_etcd_002 => "002",
    porcupine_etcd_003 => "003", porcupine_etcd_004 => "004", porcupine_etcd_005 => "005",
    porcupine_etcd_006 => "006", porcupine_etcd_007 => "007", porcupine_etcd_008 => "008",
    porcupine_etcd_009 => "009", porcupine_etcd_010 => "010", porcupine_etcd_011 => "011",
    porcupine_etcd_012 => "012", porcupine_etcd_013 => "013", porcupine_etcd_014 => "014",
    porcupine_etcd_015 => "015", porcupine_etcd_016 => "016", porcupine_etcd_017 => "017",
    porcupine_etcd_018 => "018", porcupine_etcd_019 => "019", porcupine_etcd_020 => "020",
    porcupine_etcd_021 => "021", porcupine_etcd_022 => "022", porcupine_etcd_023 => "023",
    porcupine_etcd_024 => "024", porcupine_etcd_025 => "025", porcupine_etcd_026 => "026",
    porcupine_etcd_027 => "027", porcupine_etcd_028 => "028", porcupine_etcd_029 => "029",
    porcupine_etcd_030 => "030", porcupine_etcd_031 => "031", porcupine_etcd_032 => "032",
    porcupine_etcd_033 => "033", porcupine_etcd_034 => "034", porcupine_etcd_035 => "035",
    porcupine_etcd_036 => "036", porcupine_etcd_037 => "037", porcupine_etcd_038 => "038",
    porcupine_etcd_039 => "039", porcupine_etcd_040 => "040", porcupine_etcd_041 => "041",
    porcupine_etcd_042 => "042", porcupine_etcd_043 => "043", porcupine_etcd_044 => "044",
    porcupine_etcd_045 => "045", porcupine_etcd_046 => "046", porcupine_etcd_047 => "047",
    porcupine_etcd_048 => "048", porcupine_etcd_049 => "049", porcupine_etcd_050 => "050",
    porcupine_etcd_051 => "051", porcupine_etcd_052 => "052", porcupine_etcd_053 => "053",
    porcupine_etcd_054 => "054", porcupine_etcd_055 => "055", porcupine_etcd_056 => "056",
    porcupine_etcd_057 => "057", porcupine_etcd_058 => "058", porcupine_etcd_059 => "059",
    porcupine_etcd_060 => "060", porcupine_etcd_061 => "061", porcupine_etcd_062 => "062",
    porcupine_etcd_063 => "063", porcupine_etcd_064 => "064", porcupine_etcd_065 => "065",
    porcupine_etcd_066 => "066", porcupine_etcd_067 => "067", porcupine_etcd_068 => "068",
    porcupine_etcd_069 => "069", porcupine_etcd_070 => "070", porcupine_etcd_071 => "071",
    porcupine_etcd_072 => "072", porcupine_etcd_073 => "073", porcupine_etcd_074 => "074",
    porcupine_etcd_075 => "075", porcupine_etcd_076 => "076", porcupine_etcd_077 => "077",
    porcupine_etcd_078 => "078", porcupine_etcd_079 => "079", porcupine_etcd_080 => "080",
    porcupine_etcd_081 => "081", porcupine_etcd_082 => "082", porcupine_etcd_083 => "083",
    porcupine_etcd_084 => "084", porcupine_etcd_085 => "085", porcupine_etcd_086 => "086",
    porcupine_etcd_087 => "087", porcupine_etcd_088 => "088", porcupine_etcd_089 => "089",
    porcupine_etcd_090 => "090", porcupine_etcd_091 => "091", porcupine_etcd_092 => "092",
    porcupine_etcd_093 => "093", porcupine_etcd_094 => "094",
    porcupine_etcd_096 => "096", porcupine_etcd_097 => "097", porcupine_etcd_098 => "098",
    porcupine_etcd_099 => "099", porcupine_etcd_100 => "100", porcupine_etcd_101 => "101",
    porcupine_etcd_102 => "102",
}

/// Where no single op shows the read's value gone, the sentence names the reads that refute it
/// together, and cites them as evidence.
#[test]
fn porcupine_etcd_004_names_the_reads_that_refute_its_read_together() {
    let file = "porcupine/test_data/jepsen/etcd_004.log";
    let report = check_path(&datasets().join(file), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let counterexample = &report.counterexamples[0];
    assert_eq!(
        counterexample.explanation,
        "read of the register returned 2 at history index 62, but this read, the writes and \
         successful CASes on the register, the read that returned 4 at history index 60 and the \
         read that returned 4 at history index 69 cannot all be ordered, whatever the other \
         reads saw"
    );
    let cited: Vec<Option<u64>> = counterexample
        .evidence
        .iter()
        .map(|o| o.complete_index)
        .collect();
    assert_eq!(cited, vec![Some(60), Some(69)]);
}

/// Where the writes and CASes alone refute a read, the sentence says which values they would
/// let it return.
#[test]
fn porcupine_etcd_071_says_what_its_read_could_have_returned() {
    let file = "porcupine/test_data/jepsen/etcd_071.log";
    let report = check_path(&datasets().join(file), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let counterexample = &report.counterexamples[0];
    assert_eq!(
        counterexample.explanation,
        "read of the register returned 3 at history index 64, but the writes and successful \
         CASes on the register let this read return only 4, whatever the other reads saw"
    );
    assert!(counterexample.evidence.is_empty());
}

/// Every invalid Porcupine etcd log gets a sentence that says what refutes it: none the
/// fallback that names only the state after the longest explainable prefix, and none that
/// names no op or value beyond the one refuted.
#[test]
fn no_invalid_porcupine_etcd_log_gets_the_fallback_sentence() {
    let mut fallbacks = Vec::new();
    let mut invalid = 0;
    for n in 0..=101 {
        let file = format!("porcupine/test_data/jepsen/etcd_{n:03}.log");
        if !datasets().join(&file).exists() || n == 95 || expected(&file) != Verdict::Invalid {
            continue;
        }
        invalid += 1;
        let report = check_path(&datasets().join(&file), &CheckOptions::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let counterexample = &report.counterexamples[0];
        if counterexample
            .explanation
            .contains("after the longest explainable prefix")
            || counterexample
                .explanation
                .contains("lets it hold anything else")
            || counterexample
                .explanation
                .contains("but this read and the writes")
        {
            fallbacks.push(format!("{file}: {}", counterexample.explanation));
        }
    }
    assert_eq!(invalid, 79, "the manifest's invalid etcd logs");
    assert!(fallbacks.is_empty(), "fallback sentences: {fallbacks:#?}");
}

/// Every Knossos cas-register history (EDN, Knossos semantics: the register starts at 0, a nil
/// read constrains nothing, a failed op did nothing) gets the verdict the manifest gives.
#[test]
fn knossos_cas_register_histories() {
    let manifest = std::fs::read_to_string(datasets().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    let files: Vec<&str> = manifest
        .lines()
        .filter(|l| {
            l.split('\t')
                .nth(2)
                .is_some_and(|f| f.starts_with("edn-vector (cas-register"))
        })
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert!(
        files.len() >= 100,
        "expected the Knossos set, found {} files",
        files.len()
    );
    let wrong: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let report = check_path(&datasets().join(file), &CheckOptions::default())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            (report.verdict() != expected(file)).then(|| format!("{file}: {}", report.verdict()))
        })
        .collect();
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:#?}");
}

/// Knossos's mutex history (etcd as a lock) gets the manifest's verdict under the mutex model,
/// which its acquires and releases choose, with a sentence that counts what refutes it.
#[test]
fn knossos_mutex_etcd() {
    let file = "knossos/data/mutex/bad/etcd.edn";
    check(file);
    let report = check_path(&datasets().join(file), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let counterexample = &report.counterexamples[0];
    assert_eq!(
        counterexample.explanation,
        "acquire of the lock by process 0 succeeded at 32.085 s, but 130 other acquires had \
         succeeded by the time it ended (the last at 29.421 s) and only 129 releases had begun \
         by then, so the lock cannot have been free for all of them"
    );
    // Of the 130, the sentence names the last.
    assert_eq!(counterexample.evidence.len(), 1);
    assert_eq!(
        counterexample.evidence[0].complete_time,
        Some(29_421_304_362)
    );
}

/// Knossos's multi-register history (transactions over x and y, both starting at 0) gets the
/// manifest's verdict under the multi-register model, which its transactions choose.
#[test]
fn knossos_multi_register() {
    let file = "knossos/data/multi-register/good/multi-register.edn";
    check(file);
    let report = check_path(&datasets().join(file), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(report.model, faultline_checker::Model::MultiRegister);
    assert_eq!(report.keys[""].engine, "multi-register search");
}

/// The same history with one read changed to a value nothing writes is refused, with a
/// sentence that names the transaction and the register.
#[test]
fn knossos_multi_register_with_a_stale_read_is_invalid() {
    let file = "knossos/data/multi-register/good/multi-register.edn";
    let text = std::fs::read_to_string(datasets().join(file)).expect("in the manifest");
    // The first ok read of y (0, at 7.723 s) now says 7, which no transaction writes.
    let first = " :value [[:read :x 0] [:read :y 0]],\n :process 0,";
    assert!(text.contains(first), "the file is as staged");
    let changed = text.replacen(
        first,
        " :value [[:read :x 0] [:read :y 7]],\n :process 0,",
        1,
    );
    let events = faultline_checker::edn::parse(&changed).expect("parses");
    let options = CheckOptions {
        semantics: faultline_checker::Format::Edn.semantics(),
        ..CheckOptions::default()
    };
    let report = faultline_checker::check::check_events(&events, &options).expect("checks");
    assert_eq!(report.verdict(), Verdict::Invalid);
    let sentence = &report.counterexamples[0].explanation;
    assert_eq!(
        sentence,
        "transaction by process 0 that ended at 7.723 s read y = 7, a value no transaction \
         writes to y"
    );
}

/// Porcupine's kv histories (one op map per line; get / put / append on strings, one register
/// per key) get the verdicts the manifest gives, under the kv model.
#[test]
fn porcupine_kv_histories() {
    for file in [
        "c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad",
    ] {
        check(&format!("porcupine/test_data/kv/{file}.txt"));
    }
}
