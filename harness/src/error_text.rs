//! The line a failed command prints: the error and its causes, each said once.
//!
//! anyhow's `{:#}` joins every cause in the chain, but several of our errors (and some of the
//! libraries') already name their cause in their own message (`cannot read PATH: {source}`)
//! and also return it as `source()`, so the same words came out twice.

/// `error` and its causes joined with ": ", leaving out each cause whose words already end
/// the message of the error it caused.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut parent = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if parent.is_empty() || !parent.ends_with(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        parent = said;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as `thiserror` makes `#[error("cannot read {path}: {source}")]`.
    #[derive(Debug)]
    struct ReadFailed {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for ReadFailed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for ReadFailed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(ReadFailed {
            path: "h.jsonl".into(),
            source: io,
        })
        .context("cannot check this history");
        assert_eq!(
            error_text(&error),
            "cannot check this history: cannot read h.jsonl: No such file or directory"
        );
    }

    #[test]
    fn a_cause_is_kept_when_its_words_only_appear_elsewhere_in_the_message() {
        let error = anyhow::anyhow!("timeout").context("no leader (timeout) after 30 s");
        assert_eq!(
            error_text(&error),
            "no leader (timeout) after 30 s: timeout"
        );
    }

    #[test]
    fn causes_not_yet_said_are_all_kept_in_order() {
        let error = anyhow::anyhow!("connection refused")
            .context("starting node n3")
            .context("starting the cluster");
        assert_eq!(
            error_text(&error),
            "starting the cluster: starting node n3: connection refused"
        );
    }
}
