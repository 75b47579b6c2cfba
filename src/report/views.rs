//! The tables of a [`Comparison`], each in its machine view (records with snake_case keys, units in
//! the names) and its human view (formatted cells that fit a 120-column terminal):
//!
//! | table | one row per | what |
//! | --- | --- | --- |
//! | `accuracy` | variant, then the floor | accuracy, difference to the baseline with p, Holm p, BH q and the claim, vision reliance, seeds |
//! | `per_class` | variant, then the floor | accuracy per class with the paired difference to the baseline, instruction following |
//! | `latency` | measured variant | every stage: median (interval), p90, mean (interval); throughput; memory; size |
//! | `pareto` | measured variant | accuracy against mean end-to-end latency and throughput; on the front or dominated by whom |

use super::compare::{Claim, Comparison, Role, Row};
use super::table::{Record, Table, TableName};
use crate::bench::{LatencyReport, Stat};
use crate::error::Result;
use crate::manifest::VisionInput;
use crate::score::{Accuracy, PairedTest};

fn pct_ci(a: &Accuracy) -> String {
    format!("{:.1} [{:.1}, {:.1}]", a.accuracy * 100.0, a.ci_low * 100.0, a.ci_high * 100.0)
}

fn pts_ci(t: &PairedTest) -> String {
    format!("{:.1} [{:.1}, {:.1}]", t.difference * 100.0, t.ci_low * 100.0, t.ci_high * 100.0)
}

pub(crate) fn p_text(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// The row's name for people: the baseline and the controls say what they are.
fn label(row: &Row) -> String {
    match row.role {
        Role::Baseline => format!("{} (baseline)", row.name),
        Role::Blind if row.vision_input == VisionInput::Blank => format!("{} (blank picture)", row.name),
        Role::Blind => format!("{} (blind)", row.name),
        Role::Variant | Role::Floor => row.name.clone(),
    }
}

/// The row's label in a latency table: when the rows come from several measurement runs, each
/// says which (`[run 2]`), numbered in the order of `runs`.
fn latency_label(row: &Row, runs: &[String]) -> String {
    match row.latency.as_ref().and_then(|l| runs.iter().position(|r| *r == l.run_id)) {
        Some(k) if runs.len() > 1 => format!("{} [run {}]", label(row), k + 1),
        _ => label(row),
    }
}

/// What a row changes, for people: the axis, or `(imported)` for an imported variant, which records
/// no recipe axis (its manifest's `origin: imported`).
fn changes(row: &Row) -> String {
    match (&row.changes, &row.imported) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => "(imported)".into(),
        (None, None) => String::new(),
    }
}

/// The marker of a difference: `*` claimed, `~` significant on the items but within the seed
/// spread, nothing otherwise.
fn marker(claim: Claim) -> &'static str {
    match claim {
        Claim::Better | Claim::Worse => "*",
        Claim::WithinSeedSpread => "~",
        Claim::NotSignificant => "",
    }
}

impl Comparison {
    /// Accuracy, difference to the baseline, vision reliance and seeds.
    pub fn accuracy_table(&self) -> Result<Table> {
        let any_seeds = self.rows.iter().any(|r| r.seeds.is_some());
        let any_swap = self.rows.iter().any(|r| r.vision.is_some());
        let mut header = vec!["variant", "changes", "accuracy % [95% CI]", "Δ pts", "p Holm"];
        if any_swap {
            header.push("vision reliance pts");
        }
        if any_seeds {
            header.push("seeds: mean ± sd");
        }
        let mut t = Table::new(TableName::Accuracy, format!("Accuracy (baseline `{}`)", self.baseline), &header);
        for row in &self.rows {
            let s = &row.summary;
            let a = &s.accuracy.overall;
            let d = row.vs_baseline.as_ref();
            let mut cells = vec![
                label(row),
                changes(row),
                pct_ci(a),
                d.map_or_else(String::new, |d| format!("{:+.1}{}", d.test.difference * 100.0, marker(d.claim))),
                d.map_or_else(String::new, |d| p_text(d.p_holm)),
            ];
            if any_swap {
                cells.push(row.vision.as_ref().map_or_else(String::new, |v| pts_ci(&v.drop)));
            }
            if any_seeds {
                cells.push(row.seeds.as_ref().map_or_else(String::new, |sd| {
                    format!("{}: {:.1} ± {:.1}", sd.runs.len(), sd.mean * 100.0, sd.sd * 100.0)
                }));
            }
            let v = row.vision.as_ref();
            let seeds = row.seeds.as_ref();
            let record = Record::new()
                .text("variant", &row.name)
                .text("role", row.role.name())
                .opt_text("origin", row.origin())
                .opt_text("source", row.imported.as_ref().map(|i| i.source.clone()))
                .opt_text("changes", row.changes.clone())
                .num("n_items", a.n as f64)
                .num("accuracy_pct", a.accuracy * 100.0)
                .num("ci_low_pct", a.ci_low * 100.0)
                .num("ci_high_pct", a.ci_high * 100.0)
                .num("delta_pts", d.map(|d| d.test.difference * 100.0))
                .num("delta_ci_low_pts", d.map(|d| d.test.ci_low * 100.0))
                .num("delta_ci_high_pts", d.map(|d| d.test.ci_high * 100.0))
                .num("p_value", d.map(|d| d.test.p_value))
                .num("p_holm", d.map(|d| d.p_holm))
                .num("q_bh", d.map(|d| d.q_bh))
                .opt_text("claim", d.map(|d| d.claim.name()))
                .num("swap_accuracy_pct", v.map(|v| v.swapped.accuracy * 100.0))
                .num("vision_reliance_pts", v.map(|v| v.drop.difference * 100.0))
                .num("vision_reliance_ci_low_pts", v.map(|v| v.drop.ci_low * 100.0))
                .num("vision_reliance_ci_high_pts", v.map(|v| v.drop.ci_high * 100.0))
                .num("vision_reliance_p_value", v.map(|v| v.drop.p_value))
                .num("swap_unchanged_pct", v.map(|v| v.unchanged * 100.0))
                .num("seeds", Some(seeds.map_or(1.0, |s| s.runs.len() as f64)))
                .num("seed_mean_pct", seeds.map(|s| s.mean * 100.0))
                .num("seed_sd_pts", seeds.map(|s| s.sd * 100.0))
                .num("seed_p_value", d.and_then(|d| d.seeds.map(|w| w.p_value)))
                .num("heldout_accuracy_pct", s.heldout_accuracy.map(|h| h.accuracy * 100.0))
                .num("instruction_following_pct", s.instruction_following.map(|h| h.accuracy * 100.0))
                .num("heldout_instruction_following_pct", s.instruction_following_heldout.map(|h| h.accuracy * 100.0));
            t.push(cells, record)?;
        }
        t.notes.push(format!(
            "Accuracy in % with 95% bootstrap intervals. Δ: difference to the baseline in points; p Holm: exact McNemar p-value, Holm-adjusted over the table's {} comparisons; * marks a claimed difference (p Holm < {}){}.",
            self.rows.iter().filter(|r| r.vs_baseline.is_some()).count(),
            self.alpha,
            if any_seeds { ", ~ one significant on the items but within the spread of training seeds (Welch p >= 0.05)" } else { "" }
        ));
        if let Some(f) = &self.floor {
            t.notes.push(format!("Majority floor: the {f}, scored like a model."));
        }
        if self.rows.iter().any(|r| r.imported.is_some()) {
            t.notes.push("(imported): a model made elsewhere (`origin: imported`); it records no recipe axis, so it changes none, and is tested against the baseline as any row.".into());
        }
        if any_swap {
            t.notes.push("Vision reliance: accuracy minus accuracy with each picture swapped for another item's of the same class (a fixed derangement), in points with a paired 95% interval.".into());
        }
        if !any_seeds {
            t.notes.push("One training seed per variant: training randomness alone can move a score by several points, which no interval here includes.".into());
        }
        Ok(t)
    }

    /// Accuracy per class (differences to the baseline in the records, with intervals; not
    /// claimed) and instruction following.
    pub fn per_class_table(&self) -> Result<Table> {
        let mut header: Vec<String> = vec!["variant".into()];
        header.extend(self.classes.iter().map(|c| short_class(c)));
        header.push("instr.".to_string());
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut t = Table::new(TableName::PerClass, "Accuracy per class (%)", &header_refs);
        for row in &self.rows {
            let s = &row.summary;
            let mut cells = vec![label(row)];
            let mut record = Record::new().text("variant", &row.name).text("role", row.role.name());
            for c in &self.classes {
                let a = s.accuracy.per_class.get(c);
                cells.push(a.map_or_else(String::new, |a| format!("{:.0}", a.accuracy * 100.0)));
                let d = row.per_class_vs_baseline.get(c);
                record = record
                    .num(&format!("{c}_pct"), a.map(|a| a.accuracy * 100.0))
                    .num(&format!("{c}_delta_pts"), d.map(|d| d.difference * 100.0))
                    .num(&format!("{c}_delta_ci_low_pts"), d.map(|d| d.ci_low * 100.0))
                    .num(&format!("{c}_delta_ci_high_pts"), d.map(|d| d.ci_high * 100.0));
            }
            cells.push(
                s.instruction_following.as_ref().map_or_else(String::new, |a| format!("{:.0}", a.accuracy * 100.0)),
            );
            record = record
                .num("instruction_following_pct", s.instruction_following.map(|a| a.accuracy * 100.0))
                .num("heldout_instruction_following_pct", s.instruction_following_heldout.map(|a| a.accuracy * 100.0));
            t.push(cells, record)?;
        }
        let legend: Vec<String> = self
            .classes
            .iter()
            .filter(|c| short_class(c) != **c)
            .map(|c| format!("{} = {c}", short_class(c)))
            .collect();
        t.notes.push(format!(
            "Per-class differences to the baseline are not claimed (about 50 items per class; their paired intervals are in the CSV/JSON records){}.",
            if legend.is_empty() { String::new() } else { format!("; {}", legend.join(", ")) }
        ));
        t.notes.push("instr.: share of answers in the format the question asked for, on items that ask for one (held-out phrasings alone: `heldout_instruction_following_pct` in the records).".into());
        Ok(t)
    }

    /// The batch size of the throughput columns.
    fn batch(&self) -> usize {
        self.rows.iter().find_map(|r| r.latency.as_ref().map(|l| l.batched.batch)).unwrap_or(8)
    }

    /// Latency per stage of every measured variant.
    pub fn latency_table(&self) -> Result<Table> {
        let b = self.batch();
        let mut t = Table::new(
            TableName::Latency,
            "Latency per item (batch 1; median ms; end to end: mean [95% CI])",
            &["variant", "prep. img/vid", "vision", "connector", "prefill", "TTFT", "per token", "end to end"],
        );
        let runs = self.latency_runs();
        for (row, l) in self.rows.iter().filter_map(|r| r.latency.as_ref().map(|l| (r, l))) {
            let st = &l.stages;
            let med = |s: &Stat| if s.n == 0 { String::new() } else { format!("{:.2}", s.median_ms) };
            let cells = vec![
                latency_label(row, &runs),
                format!("{}/{}", med(&st.preprocess_image), med(&st.preprocess_video)),
                med(&st.vision),
                med(&st.connector),
                med(&st.prefill),
                med(&st.ttft),
                // step_over_floor is None when no step was timed
                match l.memory_floor.and_then(|f| f.step_over_floor) {
                    Some(x) => format!("{} ({x:.*}x)", med(&st.per_token), usize::from(x < 10.0)),
                    None => med(&st.per_token),
                },
                mean_ci(&st.end_to_end),
            ];
            t.push(cells, latency_record(row, l, b))?;
        }
        if let Some(m) = self.rows.iter().find_map(|r| r.latency.as_ref().map(|l| &l.machine)) {
            let load = m.load_1min.map_or_else(String::new, |l| format!(", load {l:.2} at the start"));
            t.notes.push(format!(
                "Measured {} on {} ({} cores), {}, {} with {} intra-op threads{load}; variants timed interleaved, medians over items x repeats, intervals resample items.",
                m.date, m.cpu, m.cores, m.onnxruntime, m.provider, m.threads
            ));
        }
        if let Some(f) = self.rows.iter().find_map(|r| r.latency.as_ref().and_then(|l| l.memory_floor)) {
            let bw = f.bandwidth;
            t.notes.push(format!(
                "per token (Nx): the median decode step is N times the memory-bandwidth floor, the decoder's weight bytes at the best memory bandwidth measured in the run (read-only {:.1} GB/s on {} threads, STREAM triad {:.1} GB/s): at batch 1 a step reads every weight once, so 1x is as fast as this machine's memory allows.",
                bw.read_gbps, bw.threads, bw.triad_gbps
            ));
        }
        if runs.len() > 1 {
            let list: Vec<String> = runs.iter().enumerate().map(|(k, r)| format!("run {} = {r}", k + 1)).collect();
            t.notes.push(format!(
                "Rows come from {} different measurement runs ({}): compare latency only within one run.",
                runs.len(),
                list.join(", ")
            ));
        }
        t.notes.push(format!(
            "Throughput (items/s at batch 1 and {b}), memory and size: the `pareto` table and the records."
        ));
        Ok(t)
    }

    /// Accuracy against cost, Pareto-optimal variants marked.
    pub fn pareto_table(&self) -> Result<Table> {
        let b = self.batch();
        let ips = format!("items/s b{b}");
        let mut t = Table::new(
            TableName::Pareto,
            "Accuracy against cost",
            &["variant", "accuracy % [95% CI]", "ms/item [95% CI]", &ips, "RSS+ MiB", "disk MB", "Pareto"],
        );
        let runs = self.latency_runs();
        let mut order: Vec<&Row> = self.rows.iter().filter(|r| r.latency.is_some()).collect();
        order.sort_by(|a, b| b.summary.accuracy.overall.accuracy.total_cmp(&a.summary.accuracy.overall.accuracy));
        for row in order {
            let Some(l) = &row.latency else { continue };
            let a = &row.summary.accuracy.overall;
            let e = &l.stages.end_to_end;
            let cells = vec![
                latency_label(row, &runs),
                pct_ci(a),
                mean_ci(e),
                format!("{:.1}", l.batched.items_per_s),
                format!("{:.0}", l.rss_added_mib),
                format!("{:.2}", l.disk_bytes as f64 / 1e6),
                match (&row.pareto, &row.dominated_by) {
                    (Some(true), _) => "yes".into(),
                    (_, Some(by)) => format!("< {by}"),
                    _ => String::new(),
                },
            ];
            let record = Record::new()
                .text("variant", &row.name)
                .text("role", row.role.name())
                .opt_text("origin", row.origin())
                .num("accuracy_pct", a.accuracy * 100.0)
                .num("ci_low_pct", a.ci_low * 100.0)
                .num("ci_high_pct", a.ci_high * 100.0)
                .num("e2e_ms_mean", e.mean_ms)
                .num("e2e_ms_mean_ci_low", e.mean_ci_low_ms)
                .num("e2e_ms_mean_ci_high", e.mean_ci_high_ms)
                .num("e2e_ms_p50", e.median_ms)
                .num("e2e_ms_p90", e.p90_ms)
                .num("items_per_s_b1", l.batch1.items_per_s)
                .num(&format!("items_per_s_b{b}"), l.batched.items_per_s)
                .num("rss_added_mib", l.rss_added_mib)
                .num("disk_mb", l.disk_bytes as f64 / 1e6)
                .num("params_total", l.parameters_total as f64)
                .flag("pareto", row.pareto)
                .opt_text("dominated_by", row.dominated_by.clone())
                .text("run_id", &l.run_id);
            t.push(cells, record)?;
        }
        t.notes.push(format!(
            "Pareto: `yes` when no other variant is both not significantly less accurate (McNemar p >= {}) and faster beyond noise by at least {:.0}% (timed in one run: the paired 95% interval of the per-item difference of the fastest times lies below -{:.0}% of the slower one's mean; else the intervals of the means do not overlap); `< X`: dominated by X. Sorted by accuracy.",
            self.alpha,
            super::pareto::MIN_SPEEDUP * 100.0,
            super::pareto::MIN_SPEEDUP * 100.0
        ));
        t.notes.push("RSS+: resident memory the variant added while loading and warming up.".into());
        Ok(t)
    }

    /// The tables named, in the order given.
    pub fn tables(&self, names: &[TableName]) -> Result<Vec<Table>> {
        names
            .iter()
            .filter_map(|n| match n {
                TableName::Accuracy => Some(self.accuracy_table()),
                TableName::PerClass => Some(self.per_class_table()),
                TableName::Latency => Some(self.latency_table()),
                TableName::Pareto => Some(self.pareto_table()),
                TableName::Splits | TableName::Findings => None,
            })
            .collect()
    }
}

/// The tables a comparison shows by default, in order.
pub const DEFAULT_TABLES: [TableName; 4] =
    [TableName::Accuracy, TableName::PerClass, TableName::Latency, TableName::Pareto];

fn mean_ci(s: &Stat) -> String {
    if s.n == 0 {
        return String::new();
    }
    format!("{:.2} [{:.2}, {:.2}]", s.mean_ms, s.mean_ci_low_ms, s.mean_ci_high_ms)
}

/// A class name short enough for a 120-column per-class table (five characters at most).
fn short_class(c: &str) -> String {
    match c {
        "object" => "obj".into(),
        "counting" => "count".into(),
        "spatial" => "spat".into(),
        "compare" => "comp".into(),
        "motion" => "motn".into(),
        "count_time" => "cnt_t".into(),
        other => other.chars().take(5).collect(),
    }
}

fn latency_record(row: &Row, l: &LatencyReport, b: usize) -> Record {
    let st = &l.stages;
    let mut r = Record::new()
        .text("variant", &row.name)
        .text("run_id", &l.run_id)
        .text("measured_at", &l.machine.date)
        .text("provider", &l.machine.provider)
        .num("threads", l.machine.threads as f64)
        .num("items", l.items as f64)
        .num("repeats", l.repeats as f64);
    for (key, s) in [
        ("preprocess_image", &st.preprocess_image),
        ("preprocess_video", &st.preprocess_video),
        ("vision", &st.vision),
        ("connector", &st.connector),
        ("prefill", &st.prefill),
        ("ttft", &st.ttft),
        ("per_token", &st.per_token),
        ("host", &st.host),
        ("unaccounted", &st.unaccounted),
        ("outside_ort", &st.outside_onnx_runtime),
        ("e2e", &st.end_to_end),
    ] {
        let some = |v: f64| (s.n > 0).then_some(v);
        r = r
            .num(&format!("{key}_ms_p50"), some(s.median_ms))
            .num(&format!("{key}_ms_p50_ci_low"), some(s.median_ci_low_ms))
            .num(&format!("{key}_ms_p50_ci_high"), some(s.median_ci_high_ms))
            .num(&format!("{key}_ms_p90"), some(s.p90_ms))
            .num(&format!("{key}_ms_mean"), some(s.mean_ms))
            .num(&format!("{key}_ms_mean_ci_low"), some(s.mean_ci_low_ms))
            .num(&format!("{key}_ms_mean_ci_high"), some(s.mean_ci_high_ms));
    }
    r.num("items_per_s_b1", l.batch1.items_per_s)
        .num(&format!("items_per_s_b{b}"), l.batched.items_per_s)
        .num("tokens_per_s_b1", l.batch1.tokens_per_s)
        .num(&format!("tokens_per_s_b{b}"), l.batched.tokens_per_s)
        .num("rss_added_mib", l.rss_added_mib)
        .num("disk_mb", l.disk_bytes as f64 / 1e6)
        .num("params_total", l.parameters_total as f64)
        .num("params_trainable", l.parameters_trainable as f64)
        .num("decoder_weight_mb", l.memory_floor.map(|f| f.decoder_weight_bytes as f64 / 1e6))
        .num("read_gbps", l.memory_floor.map(|f| f.bandwidth.read_gbps))
        .num("triad_gbps", l.memory_floor.map(|f| f.bandwidth.triad_gbps))
        .num("step_floor_ms", l.memory_floor.map(|f| f.step_floor_ms))
        .num("step_over_floor", l.memory_floor.and_then(|f| f.step_over_floor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::sample_report;
    use crate::report::compare::tests::variant;
    use crate::report::compare::{Floor, Imported, VariantResult};
    use crate::report::{render, Format};

    /// A zoo-sized comparison: 25 variants with long names, a floor, swaps and latency.
    fn zoo() -> Comparison {
        let classes = [
            "object",
            "color",
            "size",
            "counting",
            "spatial",
            "ocr",
            "compare",
            "more",
            "motion",
            "order",
            "count_time",
        ];
        let mut results = Vec::new();
        for k in 0..25 {
            let correct: Vec<bool> = (0..550).map(|i| (i * 7 + k) % 4 == 0).collect();
            let mut r = variant(if k == 0 { "lynx" } else { "lynx-uniform-sampling-xx" }, &correct);
            if k > 0 {
                r.name = format!("lynx-uniform-samp-{k:03}");
            }
            for (i, p) in r.predictions.iter_mut().enumerate() {
                p.class = classes[i % 11].into();
            }
            r.changes = Some("data.text_instructions".into());
            r.swapped =
                Some(r.predictions.iter().map(|p| crate::eval::Prediction { correct: false, ..p.clone() }).collect());
            r.latency = Some(sample_report(&r.name, 10.0 + k as f64));
            results.push(r);
        }
        let mut blind = VariantResult { vision_input: VisionInput::None, ..variant("lynx-blind", &vec![true; 550]) };
        for (i, p) in blind.predictions.iter_mut().enumerate() {
            p.class = classes[i % 11].into();
        }
        results.push(blind);
        let mut floor = Floor { description: "floor".into(), predictions: variant("f", &vec![false; 550]).predictions };
        for (i, p) in floor.predictions.iter_mut().enumerate() {
            p.class = classes[i % 11].into();
        }
        Comparison::new(results, "lynx", Some(floor)).unwrap()
    }

    #[test]
    fn the_latency_table_sets_each_decode_step_against_the_memory_floor() {
        let c = zoo();
        let t = c.latency_table().unwrap();
        let col = t.header.iter().position(|h| h == "per token").unwrap();
        let lynx = t.rows.iter().find(|r| r[0].split_whitespace().next() == Some("lynx")).unwrap();
        assert_eq!(lynx[col], "10.00 (50x)", "a 10 ms step over a 0.2 ms floor: {lynx:?}");
        assert!(
            t.notes.iter().any(|n| n.contains("read-only 20.0 GB/s on 1 threads, STREAM triad 10.0 GB/s")),
            "{:?}",
            t.notes
        );
    }

    #[test]
    fn terminal_tables_fit_120_columns() {
        let c = zoo();
        let text = render(&c.tables(&DEFAULT_TABLES).unwrap(), Format::Table).unwrap();
        for line in text.lines().filter(|l| l.starts_with('|') || l.starts_with('+')) {
            assert!(line.chars().count() <= 120, "{} columns: {line}", line.chars().count());
        }
    }

    #[test]
    fn csv_columns_are_typed_and_named_with_units() {
        let c = zoo();
        for table in c.tables(&DEFAULT_TABLES).unwrap() {
            let text = render(std::slice::from_ref(&table), Format::Csv).unwrap();
            let mut r = csv::Reader::from_reader(text.as_bytes());
            let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
            assert!(
                header.iter().all(|h| h.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
                "{header:?}"
            );
            let text_keys = [
                "variant",
                "role",
                "origin",
                "source",
                "changes",
                "claim",
                "run_id",
                "measured_at",
                "provider",
                "dominated_by",
                "pareto",
            ];
            for rec in r.records() {
                let rec = rec.unwrap();
                assert_eq!(rec.len(), header.len());
                for (k, v) in header.iter().zip(rec.iter()) {
                    if !text_keys.contains(&k.as_str()) && !v.is_empty() {
                        assert!(v.parse::<f64>().is_ok(), "{}: {k} = {v:?}", table.name.key());
                    }
                }
            }
        }
    }

    #[test]
    fn an_imported_row_is_marked_and_its_records_say_where_it_comes_from() {
        let imported = Some(Imported { source: "someone/llava".into(), revision: None });
        let rows = vec![
            variant("lynx", &[true, false, true, false, true, false]),
            VariantResult { imported, ..variant("llava", &[true, true, false, false, true, true]) },
        ];
        let c = Comparison::new(rows, "lynx", None).unwrap();
        let md = render(&[c.accuracy_table().unwrap()], Format::Markdown).unwrap();
        assert!(md.contains("| llava | (imported) | 66.7"), "{md}");
        assert!(md.contains("(imported): a model made elsewhere"), "{md}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&[c.accuracy_table().unwrap()], Format::Json).unwrap()).unwrap();
        assert_eq!((json[1]["origin"].as_str(), json[1]["source"].as_str()), (Some("imported"), Some("someone/llava")));
        assert!(json[1]["changes"].is_null() && json[1]["delta_pts"].is_number());
        assert_eq!(json[0]["origin"], "zoo");
        assert!(json[0]["source"].is_null());
        // Without an import, no note.
        let own = Comparison::new(vec![variant("lynx", &[true]), variant("x", &[false])], "lynx", None).unwrap();
        assert!(!render(&[own.accuracy_table().unwrap()], Format::Markdown).unwrap().contains("(imported)"));
    }

    #[test]
    fn accuracy_records_carry_every_statistic() {
        let c = zoo();
        let t = c.accuracy_table().unwrap();
        let json: serde_json::Value = serde_json::from_str(&render(&[t], Format::Json).unwrap()).unwrap();
        let rows = json.as_array().unwrap();
        assert_eq!(rows.len(), 27);
        let base = &rows[0];
        assert_eq!(base["role"], "baseline");
        assert!(base["delta_pts"].is_null() && base["accuracy_pct"].as_f64().unwrap() > 20.0);
        let v = &rows[1];
        for key in ["delta_pts", "p_value", "p_holm", "q_bh", "vision_reliance_pts", "vision_reliance_ci_low_pts"] {
            assert!(v[key].is_number(), "{key}: {}", v[key]);
        }
        assert!(v["p_holm"].as_f64().unwrap() >= v["p_value"].as_f64().unwrap());
        let floor = rows.last().unwrap();
        assert_eq!(floor["role"], "floor");
        assert!(floor["vision_reliance_pts"].is_null());
        assert_eq!(rows[25]["role"], "blind");
    }
}
