//! The comparison tables: accuracy per class with intervals and significance against a baseline,
//! latency per stage, and accuracy against cost with the Pareto-optimal variants marked.

use serde::{Deserialize, Serialize};

use super::pareto::pareto_front;
use super::table::{Cell, Table};
use crate::bench::LatencyReport;
use crate::error::{Error, Result};
use crate::eval::{aligned_outcomes, summarize, Prediction, Summary};
use crate::score::{self, Accuracy, PairedTest};

/// Significance level of the markers.
pub const ALPHA: f64 = 0.05;

/// Everything known about one compared variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    /// Variant name.
    pub name: String,
    /// The axis it changes from the baseline, as its manifest says.
    pub changes: Option<String>,
    /// What the paper reported for that axis.
    pub paper: Option<String>,
    /// Scored predictions, in benchmark order.
    pub predictions: Vec<Prediction>,
    /// Latency, when measured.
    pub latency: Option<LatencyReport>,
}

/// A comparison: the variants, the baseline and the derived statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Name of the baseline variant.
    pub baseline: String,
    /// Per variant: its result, summary and paired test against the baseline.
    pub rows: Vec<ComparedVariant>,
    /// Classes, in table order.
    pub classes: Vec<String>,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ComparedVariant {
    /// The inputs.
    pub result: VariantResult,
    /// Accuracy summary.
    pub summary: Summary,
    /// Paired test against the baseline (None for the baseline itself).
    pub vs_baseline: Option<PairedTest>,
    /// Whether the variant is Pareto-optimal in accuracy against end-to-end latency.
    pub pareto: bool,
}

impl Comparison {
    /// Builds the comparison; `baseline` must be among `results`.
    pub fn new(results: Vec<VariantResult>, baseline: &str) -> Result<Comparison> {
        let base = results
            .iter()
            .find(|r| r.name == baseline)
            .ok_or_else(|| Error::Mismatch(format!("baseline `{baseline}` is not among the compared variants")))?
            .predictions
            .clone();
        let mut classes: Vec<String> = Vec::new();
        for r in &results {
            for p in &r.predictions {
                if !classes.contains(&p.class) {
                    classes.push(p.class.clone());
                }
            }
        }
        let mut rows = Vec::with_capacity(results.len());
        for (i, r) in results.into_iter().enumerate() {
            let summary = summarize(&r.predictions);
            let vs_baseline = if r.name == baseline {
                None
            } else {
                let (a, b) = aligned_outcomes(&base, &r.predictions);
                Some(score::paired(&a, &b, score::DEFAULT_RESAMPLES, 17 + i as u64)?)
            };
            rows.push(ComparedVariant { result: r, summary, vs_baseline, pareto: false });
        }
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| {
                (
                    r.summary.accuracy.overall.accuracy,
                    r.result.latency.as_ref().map_or(f64::NAN, |l| l.stages.end_to_end.median_ms),
                )
            })
            .collect();
        for i in pareto_front(&points) {
            rows[i].pareto = true;
        }
        Ok(Comparison { baseline: baseline.to_string(), rows, classes })
    }

    /// The accuracy table.
    pub fn accuracy_table(&self) -> Result<Table> {
        let mut header: Vec<String> =
            vec!["variant".into(), "changes".into(), "overall [95% CI]".into(), "vs baseline".into()];
        header.extend(self.classes.iter().cloned());
        header.push("instr. following".into());
        header.push("held-out instr.".into());
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut t = Table::new(format!("Accuracy (baseline `{}`)", self.baseline), &header_refs);
        for row in &self.rows {
            let s = &row.summary;
            let mut cells = vec![
                Cell::text(&row.result.name),
                Cell::text(row.result.changes.clone().unwrap_or_else(|| "-".into())),
                acc_ci(&s.accuracy.overall),
                match &row.vs_baseline {
                    None => Cell::text("baseline"),
                    Some(p) => {
                        let mark = if p.significant(ALPHA) { "*" } else { "" };
                        Cell::number(p.difference, format!("{:+.1}{mark}", p.difference * 100.0))
                    }
                },
            ];
            for c in &self.classes {
                cells.push(s.accuracy.per_class.get(c).map_or_else(Cell::empty, pct));
            }
            cells.push(s.instruction_following.as_ref().map_or_else(Cell::empty, pct));
            cells.push(s.instruction_following_heldout.as_ref().map_or_else(Cell::empty, pct));
            t.push(cells)?;
        }
        t.notes.push(format!(
            "Accuracy in %; 95% bootstrap intervals; `vs baseline` is the difference in points, * where an exact McNemar test gives p < {ALPHA}."
        ));
        t.notes.push(
            "Instruction following: share of answers in the format the question asked for (all / held-out phrasings)."
                .into(),
        );
        Ok(t)
    }

    /// The latency table (variants without a measurement show `-`).
    pub fn latency_table(&self) -> Result<Table> {
        let mut t = Table::new(
            "Latency (batch 1, median / p90 ms)",
            &[
                "variant",
                "provider",
                "preprocess img",
                "preprocess video",
                "vision",
                "connector",
                "prefill",
                "TTFT",
                "per token",
                "end to end",
                "items/s b1",
                "items/s batched",
                "tokens/s batched",
                "peak RSS MiB",
                "disk MB",
                "params (trainable)",
            ],
        );
        for row in &self.rows {
            let Some(l) = &row.result.latency else {
                let mut cells = vec![Cell::text(&row.result.name)];
                cells.extend((1..16).map(|_| Cell::empty()));
                t.push(cells)?;
                continue;
            };
            let st = &l.stages;
            t.push(vec![
                Cell::text(&row.result.name),
                Cell::text(format!("{} x{}", l.machine.provider, l.machine.threads)),
                stat(&st.preprocess_image),
                stat(&st.preprocess_video),
                stat(&st.vision),
                stat(&st.connector),
                stat(&st.prefill),
                stat(&st.ttft),
                stat(&st.per_token),
                stat(&st.end_to_end),
                Cell::number(l.batch1.items_per_s, format!("{:.1}", l.batch1.items_per_s)),
                Cell::number(l.batched.items_per_s, format!("{:.1} (b{})", l.batched.items_per_s, l.batched.batch)),
                Cell::number(l.batched.tokens_per_s, format!("{:.0}", l.batched.tokens_per_s)),
                Cell::number(l.peak_rss_mib, format!("{:.0}", l.peak_rss_mib)),
                Cell::number(l.disk_bytes as f64 / 1e6, format!("{:.2}", l.disk_bytes as f64 / 1e6)),
                Cell::number(
                    l.parameters_total as f64,
                    format!("{} ({})", human(l.parameters_total), human(l.parameters_trainable)),
                ),
            ])?;
        }
        if let Some(m) = self.rows.iter().find_map(|r| r.result.latency.as_ref().map(|l| &l.machine)) {
            t.notes.push(format!("Measured {} on {} ({} cores), {}.", m.date, m.cpu, m.cores, m.onnxruntime));
        }
        Ok(t)
    }

    /// Accuracy against cost, Pareto-optimal variants marked.
    pub fn tradeoff_table(&self) -> Result<Table> {
        let mut t = Table::new(
            "Accuracy against cost",
            &["variant", "accuracy %", "end to end ms", "items/s batched", "disk MB", "Pareto"],
        );
        let mut order: Vec<&ComparedVariant> = self.rows.iter().collect();
        order.sort_by(|a, b| b.summary.accuracy.overall.accuracy.total_cmp(&a.summary.accuracy.overall.accuracy));
        for row in order {
            let l = row.result.latency.as_ref();
            t.push(vec![
                Cell::text(&row.result.name),
                pct(&row.summary.accuracy.overall),
                l.map_or_else(Cell::empty, |l| {
                    Cell::number(l.stages.end_to_end.median_ms, format!("{:.2}", l.stages.end_to_end.median_ms))
                }),
                l.map_or_else(Cell::empty, |l| {
                    Cell::number(l.batched.items_per_s, format!("{:.1}", l.batched.items_per_s))
                }),
                l.map_or_else(Cell::empty, |l| {
                    Cell::number(l.disk_bytes as f64 / 1e6, format!("{:.2}", l.disk_bytes as f64 / 1e6))
                }),
                Cell::text(if row.pareto { "yes" } else { "" }),
            ])?;
        }
        t.notes.push("Pareto: no other variant is both at least as accurate and at least as fast (median end-to-end latency, batch 1).".into());
        Ok(t)
    }

    /// The three tables.
    pub fn tables(&self) -> Result<Vec<Table>> {
        Ok(vec![self.accuracy_table()?, self.latency_table()?, self.tradeoff_table()?])
    }
}

fn pct(a: &Accuracy) -> Cell {
    Cell::number(a.accuracy, format!("{:.1}", a.accuracy * 100.0))
}

fn acc_ci(a: &Accuracy) -> Cell {
    Cell::number(a.accuracy, format!("{:.1} [{:.1}, {:.1}]", a.accuracy * 100.0, a.ci_low * 100.0, a.ci_high * 100.0))
}

fn stat(s: &crate::bench::Stat) -> Cell {
    if s.n == 0 {
        return Cell::empty();
    }
    Cell::number(s.median_ms, format!("{:.2} / {:.2}", s.median_ms, s.p90_ms))
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preds(correct: &[bool]) -> Vec<Prediction> {
        correct
            .iter()
            .enumerate()
            .map(|(i, &c)| Prediction {
                id: format!("d/{i}"),
                position: i,
                class: ["a", "b"][i % 2].into(),
                prediction: "x".into(),
                correct: c,
                instruction: None,
                follows: None,
                phrasing: None,
                new_tokens: 1,
            })
            .collect()
    }

    #[test]
    fn marks_a_significant_difference_only() {
        let base: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let better: Vec<bool> = (0..200).map(|i| i % 2 == 0 || i % 5 == 1).collect();
        let variant = |name: &str, changes: Option<&str>, correct: &[bool]| VariantResult {
            name: name.into(),
            changes: changes.map(String::from),
            paper: None,
            predictions: preds(correct),
            latency: None,
        };
        let results = vec![
            variant("lynx", None, &base),
            variant("same", Some("x"), &base),
            variant("better", Some("y"), &better),
        ];
        let c = Comparison::new(results, "lynx").unwrap();
        let t = c.accuracy_table().unwrap();
        assert_eq!(t.rows[0][3].text, "baseline");
        assert_eq!(t.rows[1][3].text, "+0.0");
        assert_eq!(t.rows[2][3].text, "+10.0*");
        assert_eq!(t.header[4..6], ["a".to_string(), "b".to_string()]);
        assert!(Comparison::new(vec![], "lynx").is_err());
    }
}
