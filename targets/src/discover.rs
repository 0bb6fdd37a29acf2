//! Finding a target's server binary: an explicit path, an environment variable, PATH, or the
//! project's tools directory (where `scripts/install-targets.sh` unpacks Consul).

use std::path::{Path, PathBuf};

use crate::error::Error;

/// `.tools/bin` of this checkout (compile-time), then of the working directory.
fn tools_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        dirs.push(root.join(".tools").join("bin"));
    }
    dirs.push(PathBuf::from(".tools").join("bin"));
    dirs
}

/// Find `name`: `given`, then `$env_var`, then PATH, then the tools directory. `hint` says how
/// to install it.
pub fn find_program(
    name: &str,
    given: Option<&Path>,
    env_var: &str,
    hint: &str,
) -> Result<PathBuf, Error> {
    if let Some(path) = given {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(Error::MissingBinary {
            name: path.display().to_string(),
            hint: format!("no such file; {hint}"),
        });
    }
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(tools_dirs())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::MissingBinary {
            name: name.into(),
            hint: hint.into(),
        })
}

/// The first line `program args…` prints, or `unknown (program)`.
pub fn version_line(program: &Path, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("unknown ({})", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let error = find_program(
            "faultline-no-such-program",
            None,
            "FAULTLINE_NO_SUCH_BIN",
            "run `bash scripts/install-targets.sh`",
        )
        .unwrap_err();
        assert!(error.to_string().contains("install-targets.sh"), "{error}");
    }

    #[test]
    fn a_given_path_that_does_not_exist_is_refused() {
        let error =
            find_program("etcd", Some(Path::new("/nonexistent/etcd")), "X", "hint").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/etcd"), "{error}");
    }
}
