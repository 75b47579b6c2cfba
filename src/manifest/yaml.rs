//! YAML, behind one module.
//!
//! The parser is `serde_norway`, the maintained hard fork of `serde_yaml` (deprecated upstream in
//! 2024) with the same API; swapping it again changes this file only. Before the parser sees a
//! manifest, [`check_nesting`] bounds how deeply it nests: libyaml's time grows with the square of
//! the nesting depth (100 000 levels took 55 s), and a manifest needs fewer than ten.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Any YAML value (the open `provenance` block).
pub type Value = serde_norway::Value;

/// Deepest nesting accepted: flow collections (`[`, `{`) plus block levels.
pub const MAX_NESTING: usize = 64;

/// Deepest indentation accepted, in columns.
pub const MAX_INDENT: usize = 512;

/// Parses `text` (the manifest at `file`) after bounding its nesting.
pub fn parse<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T> {
    check_nesting(text, file)?;
    serde_norway::from_str(text).map_err(|e| error(e, text, file))
}

/// `value` as YAML text.
pub fn to_string<T: Serialize>(value: &T) -> Result<String> {
    serde_norway::to_string(value).map_err(|e| Error::InvalidArgument {
        what: "yaml value",
        value: e.to_string(),
        expected: "serialisable".into(),
    })
}

/// A scalar as its bare YAML text (`cross_attention`, `true`), for messages and tables.
pub fn scalar<T: Serialize>(value: &T) -> String {
    to_string(value).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Refuses text that nests deeper than [`MAX_NESTING`] or indents past [`MAX_INDENT`], by a
/// linear scan that needs no parser: flow brackets outside quotes and comments, plus the block
/// markers (`- `, `? `) that open a level on the same line.
pub fn check_nesting(text: &str, file: &Path) -> Result<()> {
    let refuse = |line: usize, what: String| Error::ManifestSyntax {
        path: file.to_path_buf(),
        message: format!("line {line}: {what}; a manifest nests a few levels deep"),
    };
    let mut flow = 0usize;
    for (k, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent > MAX_INDENT {
            return Err(refuse(k + 1, format!("indented {indent} columns, more than {MAX_INDENT}")));
        }
        let mut block = 0usize;
        let mut rest = line.trim_start();
        while let Some(r) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            block += 1;
            rest = r.trim_start();
        }
        let (mut single, mut double, mut escaped) = (false, false, false);
        for c in line.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if double => escaped = true,
                '"' if !single => double = !double,
                '\'' if !double => single = !single,
                '#' if !single && !double => break,
                '[' | '{' if !single && !double => flow += 1,
                ']' | '}' if !single && !double => flow = flow.saturating_sub(1),
                _ => {}
            }
            if flow + block + indent / 2 > MAX_NESTING {
                return Err(refuse(k + 1, format!("nested more than {MAX_NESTING} levels")));
            }
        }
    }
    Ok(())
}

/// A parser error of `text` as a schema error (the text is YAML but not a manifest: a missing or
/// unknown field, a wrong type or value) or a syntax error (not YAML at all). The two are told
/// apart by parsing the text as plain YAML -- only on this error path -- not by the words of the
/// message. The field of a schema error is the dotted path that serde_norway writes before its
/// message (`axes.connector.kind: unknown variant ...`; it has no accessor for it), or
/// `(top level)` when there is none.
fn error(e: serde_norway::Error, text: &str, file: &Path) -> Error {
    let message = e.to_string();
    if serde_norway::from_str::<Value>(text).is_err() {
        return Error::ManifestSyntax { path: file.to_path_buf(), message };
    }
    match message.split_once(": ") {
        Some((field, rest)) if !field.contains(' ') && field.chars().any(|c| c.is_ascii_alphabetic()) => {
            Error::manifest(file, field, rest.to_string())
        }
        _ => Error::manifest(file, "(top level)", message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_at_once() {
        let file = Path::new("variants/x.yaml");
        let flow = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let start = std::time::Instant::now();
        let err = parse::<Value>(&flow, file).unwrap_err().to_string();
        assert!(err.contains("nested more than 64 levels") && err.contains("line 1"), "{err}");
        let dashes = format!("a:\n  {}x\n", "- ".repeat(200));
        assert!(parse::<Value>(&dashes, file).unwrap_err().to_string().contains("nested more than"));
        let indented = format!("a:\n{}b: 1\n", " ".repeat(600));
        assert!(parse::<Value>(&indented, file).unwrap_err().to_string().contains("indented 600 columns"));
        assert!(start.elapsed().as_secs() < 5);
        // Brackets in strings and comments do not count.
        let quoted = format!("a: \"{}\" # {}\nb: '{}'\n", "[".repeat(500), "{".repeat(500), "[".repeat(500));
        assert!(parse::<Value>(&quoted, file).is_ok());
        assert!(parse::<Value>("a: [[1, 2], {b: [3]}]\nc:\n  - - 1\n    - 2\n", file).is_ok());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        axes: Axes,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Axes {
        frames: u32,
    }

    #[test]
    fn schema_and_syntax_errors_are_told_apart_by_parsing_not_by_words() {
        let file = Path::new("variants/x.yaml");
        let field = |text: &str| match parse::<Doc>(text, file) {
            Err(Error::Manifest { field, .. }) => field,
            other => panic!("expected a schema error, got {other:?}"),
        };
        assert_eq!(field("name: x\naxes: {frames: -1}\n"), "axes.frames");
        assert_eq!(field("name: x\naxes: {frames: 1, colour: 2}\n"), "axes");
        assert_eq!(field("name: x\n"), "(top level)");
        assert_eq!(field("- 1\n"), "(top level)");
        for bad in ["name: \"x\naxes: {", "name: x\n  axes: 1\n: :", "a: *nowhere\n"] {
            assert!(matches!(parse::<Doc>(bad, file), Err(Error::ManifestSyntax { .. })), "{bad}");
        }
    }
}
