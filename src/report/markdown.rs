//! The Markdown report (`lynx-zoo report`): the generated part of docs/results.md between two
//! markers, and the table that sets the verdicts of one benchmark split beside another's (a
//! fresh-seed split: a finding that holds on only one split is not a finding).

use super::compare::{Claim, Comparison};
use super::table::{Record, Table, TableName};
use crate::error::Result;

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

fn key(label: &str) -> String {
    let k: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    k.trim_matches('_').to_string()
}

/// The difference of every variant to the baseline on each split, with the Holm-adjusted p-value
/// and the claim, and whether the verdict agrees across splits. `splits` pairs a label (`data/test`,
/// `fresh seed 7`) with the comparison on that split; the first split's rows set the order.
pub fn splits_table(splits: &[(String, &Comparison)]) -> Result<Table> {
    let mut header: Vec<String> = vec!["variant".into()];
    header.extend(splits.iter().map(|(label, _)| format!("{label}: Δ pts (p Holm)")));
    header.push("verdict".into());
    let refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(TableName::Splits, "Differences to the baseline on each split", &refs);
    let Some((_, first)) = splits.first() else { return Ok(t) };
    for row in first.rows.iter().filter(|r| r.vs_baseline.is_some()) {
        let mut cells = vec![row.name.clone()];
        let mut record = Record::new().text("variant", &row.name);
        let mut claims = Vec::new();
        for (label, c) in splits {
            let d = c.row(&row.name).and_then(|r| r.vs_baseline.as_ref());
            cells.push(d.map_or_else(
                || "not run".into(),
                |d| {
                    let mark = if d.claim.is_claimed() { "*" } else { "" };
                    format!("{:+.1}{mark} ({})", d.test.difference * 100.0, super::views::p_text(d.p_holm))
                },
            ));
            let k = key(label);
            record = record
                .num(&format!("{k}_delta_pts"), d.map(|d| d.test.difference * 100.0))
                .num(&format!("{k}_p_holm"), d.map(|d| d.p_holm))
                .opt_text(&format!("{k}_claim"), d.map(|d| d.claim.name()));
            claims.push(d.map(|d| d.claim));
        }
        let verdict = match claims.as_slice() {
            all if all.iter().all(|c| *c == Some(Claim::Better)) => "better on every split",
            all if all.iter().all(|c| *c == Some(Claim::Worse)) => "worse on every split",
            all if all.iter().any(|c| c.is_some_and(Claim::is_claimed)) => "split-dependent: no claim",
            _ => "no difference shown",
        };
        cells.push(verdict.into());
        record = record.text("verdict", verdict);
        t.push(cells, record)?;
    }
    t.notes.push(
        "A difference is stated as a finding only where it is claimed (* : Holm-adjusted p < 0.05) on every split."
            .into(),
    );
    Ok(t)
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
        assert_eq!(key("fresh seed 7"), "fresh_seed_7");
        assert_eq!(key("data/test"), "data_test");
    }
}
