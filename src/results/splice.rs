//! The generated part of a hand-written Markdown file (docs/results.md): what `lynx-zoo report`
//! writes goes between two markers, and the reading around them stays as it was written.
//!
//! ```text
//! # Results            <- by hand, kept
//! <!-- report:begin -->
//! ...                  <- replaced on every `report`
//! <!-- report:end -->
//! ...                  <- by hand, kept
//! ```

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// Start of the generated part of a Markdown file.
pub const BEGIN: &str = "<!-- report:begin -->";
/// End of the generated part.
pub const END: &str = "<!-- report:end -->";

/// `existing` with the part between [`BEGIN`] and [`END`] replaced by `body` (which carries the
/// markers itself); the body is appended when there are no markers, and a new file gets a title.
pub fn splice(existing: &str, body: &str) -> String {
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{}{}", &existing[..b], body.trim_end(), &existing[e + END.len()..]),
        _ if existing.trim().is_empty() => format!("# Results\n\n{}\n", body.trim_end()),
        _ => format!("{}\n\n{}\n", existing.trim_end(), body.trim_end()),
    }
}

/// Replaces the generated part of the Markdown file `doc` with `body` ([`splice`]); creates the
/// file (and its folder) when missing.
pub fn write_spliced(doc: &Path, body: &str) -> Result<()> {
    let existing = fs::read_to_string(doc).unwrap_or_default();
    if let Some(dir) = doc.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    fs::write(doc, splice(&existing, body)).map_err(|e| Error::io("writing", doc, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_between_the_markers() {
        let doc = format!("# R\n\nhand\n\n{BEGIN}\nold\n{END}\n\ntail\n");
        let out = splice(&doc, &format!("{BEGIN}\nnew\n{END}\n"));
        assert_eq!(out, format!("# R\n\nhand\n\n{BEGIN}\nnew\n{END}\n\ntail\n"));
        assert!(splice("", &format!("{BEGIN}\nx\n{END}")).starts_with("# Results"));
        assert!(splice("# Mine\n", &format!("{BEGIN}\nx\n{END}")).starts_with("# Mine\n\n<!--"));
    }

    #[test]
    fn write_spliced_keeps_the_hand_written_part_of_the_file() {
        let t = tempfile::tempdir().unwrap();
        let doc = t.path().join("docs/results.md");
        write_spliced(&doc, &format!("{BEGIN}\nfirst\n{END}\n")).unwrap();
        let mut text = fs::read_to_string(&doc).unwrap();
        text.push_str("\nread by hand\n");
        fs::write(&doc, text).unwrap();
        write_spliced(&doc, &format!("{BEGIN}\nsecond\n{END}\n")).unwrap();
        assert_eq!(fs::read_to_string(&doc).unwrap(), format!("# Results\n\n{BEGIN}\nsecond\n{END}\n\nread by hand\n"));
    }
}
