//! `faultline serve`: browse stored runs over HTTP, read-only. The index lists every run
//! (target, date, verdict, operations, faults), newest first; each run's files (its report,
//! plots, history, node logs) are served as they are. Nothing outside the results directory is
//! ever served: paths with `..`, absolute paths and symlinks that lead out are refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use faultline_checker::Verdict;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The results store to browse.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,

    /// Address to listen on (keep it on loopback unless you mean to share the results).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
}

pub fn run(args: ServeArgs) -> anyhow::Result<Verdict> {
    let root = args.results.canonicalize().with_context(|| {
        format!(
            "no results directory at {}: run `faultline test` first, or pass --results DIR",
            args.results.display()
        )
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the server runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("listening on {}: is the port taken?", args.bind))?;
        let address = listener.local_addr()?;
        println!("serving {} on http://{address}/", root.display());
        let app = Router::new()
            .route("/", get(index))
            .route("/runs/{*path}", get(file))
            .with_state(Arc::new(Store {
                root,
                fault_counts: Mutex::default(),
            }));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })?;
    Ok(Verdict::Valid)
}

/// The results directory being served, and what the index has learnt about its runs.
struct Store {
    /// Canonical: every served path must resolve inside it.
    root: PathBuf,
    /// Faults per history, keyed by its path, length and mtime: counting them reads the
    /// whole history, which for a 1e6-operation run is worth doing once, not per page view.
    fault_counts: Mutex<HashMap<PathBuf, FaultCount>>,
}

/// A history's fault count and the length and mtime it was counted at.
#[derive(Clone, Copy)]
struct FaultCount {
    len: u64,
    modified: Option<SystemTime>,
    faults: usize,
}

impl Store {
    /// The fault intervals of a history, as its report draws them.
    fn faults(&self, history: &Path) -> usize {
        let Ok(meta) = std::fs::metadata(history) else {
            return 0;
        };
        let (len, modified) = (meta.len(), meta.modified().ok());
        if let Ok(counts) = self.fault_counts.lock()
            && let Some(known) = counts.get(history)
            && (known.len, known.modified) == (len, modified)
        {
            return known.faults;
        }
        let faults = std::fs::read_to_string(history)
            .map(|text| faultline_checker::report::faults_from_jsonl(&text).len())
            .unwrap_or(0);
        if let Ok(mut counts) = self.fault_counts.lock() {
            let count = FaultCount {
                len,
                modified,
                faults,
            };
            counts.insert(history.to_path_buf(), count);
        }
        faults
    }
}

/// One run directory and what its files say about it.
struct RunEntry {
    /// Relative to the results directory: `<target>-<workload>/<timestamp>`.
    path: String,
    /// From test.json; `—` for a directory without one (e.g. a copied history).
    target: String,
    workload: String,
    stamp: String,
    verdict: String,
    ops: String,
    faults: usize,
    has_report: bool,
}

/// Every run directory under `store.root` (`<name>/<timestamp>/history.jsonl`), newest first.
fn runs(store: &Store) -> Vec<RunEntry> {
    let mut entries = Vec::new();
    let Ok(names) = std::fs::read_dir(&store.root) else {
        return entries;
    };
    for name in names.flatten() {
        let name_path = name.path();
        // `latest` is a symlink to one of the runs: listing it would list that run twice.
        if name.file_name() == "latest" || !name_path.is_dir() {
            continue;
        }
        let Ok(stamps) = std::fs::read_dir(&name_path) else {
            continue;
        };
        for stamp in stamps.flatten() {
            let dir = stamp.path();
            if !dir.join("history.jsonl").is_file() {
                continue;
            }
            let read_json = |file: &str| -> Option<serde_json::Value> {
                std::fs::read(dir.join(file))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
            };
            let results = read_json("results.json");
            let test = read_json("test.json");
            let text_of = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "—".to_string(),
                other => other.to_string(),
            };
            let verdict = match results.as_ref().map(|r| &r["valid"]) {
                Some(serde_json::Value::Bool(true)) => "valid".to_string(),
                Some(serde_json::Value::Bool(false)) => "invalid".to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => "not checked".to_string(),
            };
            let spec = test.as_ref().map(|t| &t["spec"]);
            entries.push(RunEntry {
                path: format!(
                    "{}/{}",
                    name.file_name().to_string_lossy(),
                    stamp.file_name().to_string_lossy()
                ),
                target: spec.map_or_else(|| "—".into(), |s| text_of(&s["target"])),
                workload: spec.map_or_else(|| "—".into(), |s| text_of(&s["workload"]["workload"])),
                stamp: stamp.file_name().to_string_lossy().into_owned(),
                verdict,
                ops: results
                    .as_ref()
                    .map(|r| text_of(&r["stats"]["ops"]))
                    .unwrap_or_else(|| "—".into()),
                faults: store.faults(&dir.join("history.jsonl")),
                has_report: dir.join("report.html").is_file(),
            });
        }
    }
    // Timestamps sort as text (20261124T161843-264Z), so newest first is a reverse sort.
    entries.sort_by(|a, b| b.stamp.cmp(&a.stamp).then(a.path.cmp(&b.path)));
    entries
}

/// `20261124T161843-264Z` (a run directory's name) as `2026-11-24 16:18:43 UTC`; any other
/// name as it is.
fn date_of(stamp: &str) -> String {
    let b = stamp.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|_| &stamp[range])
    };
    match (
        digits(0..4),
        digits(4..6),
        digits(6..8),
        b.get(8),
        digits(9..11),
        digits(11..13),
        digits(13..15),
    ) {
        (Some(y), Some(mo), Some(d), Some(b'T'), Some(h), Some(mi), Some(s)) => {
            format!("{y}-{mo}-{d} {h}:{mi}:{s} UTC")
        }
        _ => stamp.to_string(),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn index(State(store): State<Arc<Store>>) -> Html<String> {
    // Reading every run's files is blocking I/O: keep it off the async workers.
    let runs = tokio::task::spawn_blocking(move || runs(&store))
        .await
        .unwrap_or_default();
    let mut rows = String::new();
    for run in runs {
        let link = if run.has_report {
            format!("runs/{}/report.html", run.path)
        } else {
            format!("runs/{}/history.jsonl", run.path)
        };
        rows.push_str(&format!(
            "<tr class=\"{v}\"><td><a href=\"{link}\">{path}</a></td><td>{target}</td><td>{workload}</td><td>{date}</td><td>{v}</td><td class=\"num\">{ops}</td><td class=\"num\">{faults}</td></tr>\n",
            link = escape(&link),
            path = escape(&run.path),
            target = escape(&run.target),
            workload = escape(&run.workload),
            date = escape(&date_of(&run.stamp)),
            v = escape(&run.verdict),
            ops = escape(&run.ops),
            faults = run.faults,
        ));
    }
    if rows.is_empty() {
        rows.push_str(
            "<tr><td colspan=\"7\">no runs yet: run <code>faultline test</code></td></tr>",
        );
    }
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Faultline runs</title>\
<style>body{{font:14px system-ui,sans-serif;margin:24px}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:left}}\
table{{border-collapse:collapse}}td.num{{text-align:right}}tr.invalid td{{background:#fdecea}}tr.unknown td{{background:#fff6dd}}</style>\
</head><body><h1>Faultline runs</h1><table><tr><th>run</th><th>target</th><th>workload</th><th>date</th><th>verdict</th><th>operations</th><th>faults</th></tr>\n{rows}</table></body></html>"
    ))
}

/// `path` as a relative path of plain components, or `None` if it tries to leave.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!clean.as_os_str().is_empty()).then_some(clean)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

async fn file(State(store): State<Arc<Store>>, UrlPath(path): UrlPath<String>) -> Response {
    let root = &store.root;
    let refused = (StatusCode::FORBIDDEN, "outside the results directory").into_response();
    let Some(relative) = safe_relative(&path) else {
        return refused;
    };
    // Resolve symlinks and check again: a link inside the store may point anywhere.
    let Ok(full) = root.join(relative).canonicalize() else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    if !full.starts_with(root) {
        return refused;
    }
    match tokio::fs::read(&full).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&full))], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert_eq!(
            safe_relative("a/b/report.html"),
            Some(PathBuf::from("a/b/report.html"))
        );
        assert_eq!(safe_relative("a/./b"), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative("../etc/passwd"), None);
        assert_eq!(safe_relative("a/../../x"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative(""), None);
    }

    #[test]
    fn run_directory_names_read_as_dates() {
        assert_eq!(date_of("20261124T161843-264Z"), "2026-11-24 16:18:43 UTC");
        assert_eq!(date_of("20261124"), "20261124");
        assert_eq!(date_of("2026112xT161843-264Z"), "2026112xT161843-264Z");
        assert_eq!(date_of("é"), "é");
        assert_eq!(date_of(""), "");
    }

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
