//! The comparison of variants against a baseline, with everything a verdict needs
//! (../shared/BRIEF.md, "What makes a verdict trustworthy"):
//!
//! - accuracy with its 95% bootstrap interval, per class too;
//! - the **floors**: the majority floor (eval::controls) as a row of its own, and blind variants
//!   marked as controls: the matched blind control that sees a blank picture (`vision_input:
//!   blank`) and a variant without vision (`none`) alike;
//! - **vision reliance**: the drop from a variant's accuracy to its image-swap control's, with a
//!   paired interval, and the share of answers the swap left unchanged;
//! - the difference to the baseline with an exact McNemar p-value, its **Holm** adjustment and
//!   **Benjamini-Hochberg** q-value over every comparison of the table; a difference is *claimed*
//!   only where the Holm-adjusted p is below [`ALPHA`] and, when several training seeds of both
//!   variants exist (`seed_of` in their manifests), Welch's test on the per-seed accuracies agrees;
//! - the Pareto front of accuracy against latency, counting a variant dominated only when another
//!   is not significantly less accurate and faster beyond the latency intervals ([`super::pareto`]).
//!
//! Imported variants (a manifest's `origin: imported`) are rows like any other: their accuracy,
//! difference to the baseline (or their role as the baseline), controls and latency are computed
//! alike. They record no recipe axis, so no row is grouped by axis: `changes` and `paper` stay
//! empty for them and the row carries where it came from ([`Imported`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::pareto::noisy_front;
use crate::bench::LatencyReport;
use crate::error::{Error, Result};
use crate::eval::{aligned_outcomes, summarize, Prediction, Summary};
use crate::manifest::{PaperFinding, VisionInput};
use crate::score::{self, Accuracy, PairedTest, WelchTest};

/// Significance level of every claim, after correction.
pub const ALPHA: f64 = 0.05;

/// Everything known about one evaluated variant (or one training seed of it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    /// Variant name.
    pub name: String,
    /// The axis it changes from the baseline, as its manifest says.
    pub changes: Option<String>,
    /// What the paper reported for that axis.
    pub paper: Option<String>,
    /// Which way the paper found the variant against the baseline (manifest `paper_finding`).
    #[serde(default)]
    pub paper_finding: Option<PaperFinding>,
    /// Where an imported variant comes from (its manifest's `origin: imported`); `None` for the
    /// zoo's own variants.
    #[serde(default)]
    pub imported: Option<Imported>,
    /// What it sees of the picture (its manifest's `axes.vision_input`): `picture`, or a blind
    /// control's `blank` picture or `none`.
    #[serde(default)]
    pub vision_input: VisionInput,
    /// Its training seed (manifest provenance), when recorded.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The variant it repeats with another training seed (manifest `seed_of`).
    #[serde(default)]
    pub seed_of: Option<String>,
    /// Scored predictions, in benchmark order.
    pub predictions: Vec<Prediction>,
    /// Scored predictions of the image-swap control, when run.
    #[serde(default)]
    pub swapped: Option<Vec<Prediction>>,
    /// Latency, when measured.
    pub latency: Option<LatencyReport>,
}

impl VariantResult {
    /// A result with only predictions (names and everything else empty), e.g. for `data score`.
    pub fn scored(name: impl Into<String>, predictions: Vec<Prediction>) -> Self {
        Self {
            name: name.into(),
            changes: None,
            paper: None,
            paper_finding: None,
            imported: None,
            vision_input: VisionInput::Picture,
            seed: None,
            seed_of: None,
            predictions,
            swapped: None,
            latency: None,
        }
    }

    /// Whether its answers can depend on the picture (`vision_input: picture`); false for the blind
    /// controls (`blank`, `none`).
    pub fn sees(&self) -> bool {
        self.vision_input.sees()
    }
}

/// Where an imported variant comes from: its manifest's `origin.source` and `origin.revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// A Hugging Face repository id or a folder's name.
    pub source: String,
    /// The source's revision, when recorded.
    pub revision: Option<String>,
}

/// The majority floor's predictions and where its answers came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Floor {
    /// One line: what the floor is (eval::MajorityFloor::describe).
    pub description: String,
    /// Its scored predictions.
    pub predictions: Vec<Prediction>,
}

/// Name of the majority floor's row.
pub const FLOOR_ROW: &str = "majority floor";

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The variant others are tested against.
    Baseline,
    /// A variant that reads the picture.
    Variant,
    /// A control that does not see the picture: the matched blind control (a blank picture in
    /// place of each one, `vision_input: blank`) or a variant without vision (`none`).
    Blind,
    /// The majority floor.
    Floor,
}

impl Role {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Baseline => "baseline",
            Role::Variant => "variant",
            Role::Blind => "blind",
            Role::Floor => "floor",
        }
    }
}

/// Accuracy of a variant over its training seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSpread {
    /// Per seed: (variant name, seed, accuracy as a fraction).
    pub runs: Vec<(String, Option<u64>, f64)>,
    /// Mean accuracy over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds.
    pub sd: f64,
}

/// Whether a difference to the baseline is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Claim {
    /// Significantly more accurate than the baseline (corrected, and beyond the seed spread).
    Better,
    /// Significantly less accurate.
    Worse,
    /// The Holm-adjusted p-value is not below the level: no claim.
    NotSignificant,
    /// Significant on the items, but within the spread of training seeds: no claim.
    WithinSeedSpread,
}

impl Claim {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Claim::Better => "better",
            Claim::Worse => "worse",
            Claim::NotSignificant => "not_significant",
            Claim::WithinSeedSpread => "within_seed_spread",
        }
    }

    /// Whether a difference is claimed.
    pub fn is_claimed(self) -> bool {
        matches!(self, Claim::Better | Claim::Worse)
    }
}

/// The difference of a row to the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delta {
    /// Paired test on the items (difference = this row - baseline).
    pub test: PairedTest,
    /// Holm-adjusted p-value over the table's comparisons.
    pub p_holm: f64,
    /// Benjamini-Hochberg q-value over the table's comparisons.
    pub q_bh: f64,
    /// Welch's test on per-seed accuracies, when both sides have two or more seeds.
    pub seeds: Option<WelchTest>,
    /// The verdict.
    pub claim: Claim,
}

/// How much a variant relies on the picture: its image-swap control.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisionReliance {
    /// Accuracy with the pictures swapped.
    pub swapped: Accuracy,
    /// Paired test of the swap: difference = own accuracy - swapped accuracy (the reliance).
    pub drop: PairedTest,
    /// Share of items whose answer text the swap left unchanged.
    pub unchanged: f64,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Variant name (or [`FLOOR_ROW`]).
    pub name: String,
    /// What it is.
    pub role: Role,
    /// What it sees of the picture (`none` for the floor): tells a blank-picture control from a
    /// variant without vision.
    #[serde(default)]
    pub vision_input: VisionInput,
    /// The axis it changes.
    pub changes: Option<String>,
    /// What the paper reported for that axis.
    pub paper: Option<String>,
    /// Which way the paper found the variant against the baseline.
    #[serde(default)]
    pub paper_finding: Option<PaperFinding>,
    /// Where an imported variant comes from (`None` for the zoo's own variants and the floor).
    #[serde(default)]
    pub imported: Option<Imported>,
    /// Accuracy summary of the (first) seed.
    pub summary: Summary,
    /// Accuracy over training seeds, when two or more exist.
    pub seeds: Option<SeedSpread>,
    /// Difference to the baseline (None for the baseline).
    pub vs_baseline: Option<Delta>,
    /// Per-class paired tests against the baseline (differences shown with intervals, not claimed).
    pub per_class_vs_baseline: BTreeMap<String, PairedTest>,
    /// The image-swap control, when run.
    pub vision: Option<VisionReliance>,
    /// Latency, when measured.
    pub latency: Option<LatencyReport>,
    /// On the Pareto front of accuracy against latency (None without latency).
    pub pareto: Option<bool>,
    /// The variant that dominates this one, when not on the front.
    pub dominated_by: Option<String>,
}

impl Row {
    /// The manifest's `origin.kind` of a variant's row, `zoo` or `imported`; `None` for the floor.
    pub fn origin(&self) -> Option<&'static str> {
        match (self.role, &self.imported) {
            (Role::Floor, _) => None,
            (_, Some(_)) => Some("imported"),
            (_, None) => Some("zoo"),
        }
    }
}

/// A comparison: the rows, the baseline and the statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Name of the baseline variant.
    pub baseline: String,
    /// Significance level of claims.
    pub alpha: f64,
    /// Classes, in table order.
    pub classes: Vec<String>,
    /// What the majority floor is, when computed.
    pub floor: Option<String>,
    /// Primary variants in the given order, then the floor.
    pub rows: Vec<Row>,
    /// The inputs, every seed included.
    pub results: Vec<VariantResult>,
}

fn outcomes_by_class<'a>(p: &'a [Prediction], class: &'a str) -> impl Iterator<Item = &'a Prediction> + 'a {
    p.iter().filter(move |p| p.class == class)
}

fn overall(p: &[Prediction]) -> f64 {
    if p.is_empty() {
        0.0
    } else {
        p.iter().filter(|p| p.correct).count() as f64 / p.len() as f64
    }
}

fn vision_reliance(own: &[Prediction], swapped: &[Prediction], seed: u64) -> Result<VisionReliance> {
    let (s, o) = aligned_outcomes(swapped, own);
    let drop = score::paired(&s, &o, score::DEFAULT_RESAMPLES, seed)?;
    let swapped_summary = summarize(swapped).accuracy.overall;
    let texts: BTreeMap<&str, &str> = own.iter().map(|p| (p.id.as_str(), p.prediction.as_str())).collect();
    let paired: Vec<bool> = swapped
        .iter()
        .filter_map(|p| texts.get(p.id.as_str()).map(|own| score::normalize(own) == score::normalize(&p.prediction)))
        .collect();
    let unchanged =
        if paired.is_empty() { 0.0 } else { paired.iter().filter(|&&u| u).count() as f64 / paired.len() as f64 };
    Ok(VisionReliance { swapped: swapped_summary, drop, unchanged })
}

impl Comparison {
    /// Builds the comparison of `results` (seed replicates folded into the variant they repeat)
    /// against `baseline`, with the majority `floor` as a row when given.
    pub fn new(results: Vec<VariantResult>, baseline: &str, floor: Option<Floor>) -> Result<Comparison> {
        let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        let primary = |r: &VariantResult| r.seed_of.as_deref().filter(|p| names.contains(p)).is_none();
        let base = results
            .iter()
            .find(|r| r.name == baseline && primary(r))
            .ok_or_else(|| Error::Mismatch(format!("baseline `{baseline}` is not among the compared variants")))?;
        let base_preds = base.predictions.clone();
        let seeds_of = |name: &str| -> Vec<&VariantResult> {
            results.iter().filter(|r| r.name == name || r.seed_of.as_deref() == Some(name)).collect()
        };
        let spread = |name: &str| -> Option<SeedSpread> {
            let runs: Vec<(String, Option<u64>, f64)> =
                seeds_of(name).iter().map(|r| (r.name.clone(), r.seed, overall(&r.predictions))).collect();
            let accs: Vec<f64> = runs.iter().map(|r| r.2).collect();
            score::mean_sd(&accs).map(|(mean, sd)| SeedSpread { runs, mean, sd })
        };
        let base_seed_accs: Vec<f64> = seeds_of(baseline).iter().map(|r| overall(&r.predictions)).collect();

        let mut classes: Vec<String> = Vec::new();
        for p in results.iter().flat_map(|r| &r.predictions) {
            if !classes.contains(&p.class) {
                classes.push(p.class.clone());
            }
        }

        struct Pending {
            row: Row,
            preds: Vec<Prediction>,
            seed_accs: Vec<f64>,
        }
        let mut pending: Vec<Pending> = Vec::new();
        for (i, r) in results.iter().enumerate().filter(|(_, r)| primary(r)) {
            let role = match (r.name == baseline, r.sees()) {
                (true, _) => Role::Baseline,
                (false, true) => Role::Variant,
                (false, false) => Role::Blind,
            };
            let vision = match (&r.swapped, r.sees()) {
                (Some(s), true) => Some(vision_reliance(&r.predictions, s, 101 + i as u64)?),
                _ => None,
            };
            pending.push(Pending {
                row: Row {
                    name: r.name.clone(),
                    role,
                    vision_input: r.vision_input,
                    changes: r.changes.clone(),
                    paper: r.paper.clone(),
                    paper_finding: r.paper_finding,
                    imported: r.imported.clone(),
                    summary: summarize(&r.predictions),
                    seeds: spread(&r.name),
                    vs_baseline: None,
                    per_class_vs_baseline: BTreeMap::new(),
                    vision,
                    latency: r.latency.clone(),
                    pareto: None,
                    dominated_by: None,
                },
                preds: r.predictions.clone(),
                seed_accs: seeds_of(&r.name).iter().map(|v| overall(&v.predictions)).collect(),
            });
        }
        let floor_description = floor.as_ref().map(|f| f.description.clone());
        if let Some(f) = floor {
            pending.push(Pending {
                row: Row {
                    name: FLOOR_ROW.into(),
                    role: Role::Floor,
                    vision_input: VisionInput::None,
                    changes: None,
                    paper: None,
                    paper_finding: None,
                    imported: None,
                    summary: summarize(&f.predictions),
                    seeds: None,
                    vs_baseline: None,
                    per_class_vs_baseline: BTreeMap::new(),
                    vision: None,
                    latency: None,
                    pareto: None,
                    dominated_by: None,
                },
                preds: f.predictions,
                seed_accs: Vec::new(),
            });
        }

        // Paired tests against the baseline, then Holm and BH over all of them.
        let mut tests: Vec<(usize, PairedTest, Option<WelchTest>)> = Vec::new();
        for (i, p) in pending.iter_mut().enumerate() {
            if p.row.role == Role::Baseline {
                continue;
            }
            let (a, b) = aligned_outcomes(&base_preds, &p.preds);
            let test = score::paired(&a, &b, score::DEFAULT_RESAMPLES, 17 + i as u64)?;
            for c in &classes {
                let base_c: Vec<Prediction> = outcomes_by_class(&base_preds, c).cloned().collect();
                let var_c: Vec<Prediction> = outcomes_by_class(&p.preds, c).cloned().collect();
                let (a, b) = aligned_outcomes(&base_c, &var_c);
                if !a.is_empty() {
                    p.row.per_class_vs_baseline.insert(c.clone(), score::paired(&a, &b, 500, 29 + i as u64)?);
                }
            }
            tests.push((i, test, score::welch(&base_seed_accs, &p.seed_accs)));
        }
        let p_values: Vec<f64> = tests.iter().map(|t| t.1.p_value).collect();
        let (holm, bh) = (score::holm(&p_values), score::benjamini_hochberg(&p_values));
        for (k, (i, test, seeds)) in tests.into_iter().enumerate() {
            let claim = if holm[k] >= ALPHA {
                Claim::NotSignificant
            } else if seeds.is_some_and(|w| w.p_value >= ALPHA) {
                Claim::WithinSeedSpread
            } else if test.difference > 0.0 {
                Claim::Better
            } else {
                Claim::Worse
            };
            pending[i].row.vs_baseline = Some(Delta { test, p_holm: holm[k], q_bh: bh[k], seeds, claim });
        }

        // The Pareto front among rows with a latency measurement.
        let measured: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].row.latency.is_some()).collect();
        let points: Vec<super::pareto::Point<'_>> = measured
            .iter()
            .filter_map(|&i| {
                pending[i].row.latency.as_ref().map(|l| super::pareto::Point {
                    predictions: &pending[i].preds,
                    latency: &l.stages.end_to_end,
                    per_item: (&l.e2e_per_item_ms, &l.item_is_video, &l.run_id),
                })
            })
            .collect();
        let front = noisy_front(&points, ALPHA)?;
        let names_measured: Vec<String> = measured.iter().map(|&i| pending[i].row.name.clone()).collect();
        for (k, &i) in measured.iter().enumerate() {
            pending[i].row.pareto = Some(front[k].is_none());
            pending[i].row.dominated_by = front[k].map(|j| names_measured[j].clone());
        }
        Ok(Comparison {
            baseline: baseline.to_string(),
            alpha: ALPHA,
            classes,
            floor: floor_description,
            rows: pending.into_iter().map(|p| p.row).collect(),
            results,
        })
    }

    /// The distinct latency runs among the rows, in first-seen order.
    pub fn latency_runs(&self) -> Vec<String> {
        let mut runs: Vec<String> = Vec::new();
        for l in self.rows.iter().filter_map(|r| r.latency.as_ref()) {
            if !runs.contains(&l.run_id) {
                runs.push(l.run_id.clone());
            }
        }
        runs
    }

    /// The row of `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn preds(correct: &[bool]) -> Vec<Prediction> {
        correct
            .iter()
            .enumerate()
            .map(|(i, &c)| Prediction {
                id: format!("d/{i}"),
                position: i,
                class: ["a", "b"][i % 2].into(),
                prediction: if c { "right".into() } else { format!("wrong {i}") },
                correct: c,
                instruction: None,
                follows: None,
                phrasing: None,
                new_tokens: 1,
            })
            .collect()
    }

    pub(crate) fn variant(name: &str, correct: &[bool]) -> VariantResult {
        VariantResult::scored(name, preds(correct))
    }

    #[test]
    fn holm_decides_the_claims() {
        let base: Vec<bool> = (0..400).map(|i| i % 2 == 0).collect();
        // +10 points: p ~ 1e-24, survives Holm over 4 tests.
        let better: Vec<bool> = (0..400).map(|i| i % 2 == 0 || i % 5 == 1).collect();
        // +1.5 points each from 6 discordant pairs: p = 0.031 alone, 0.094 after Holm.
        let tiny =
            |k: usize| -> Vec<bool> { (0..400).map(|i| i % 2 == 0 || (i % 64 == 2 * k + 1 && i < 384)).collect() };
        let c = Comparison::new(
            vec![
                variant("lynx", &base),
                variant("better", &better),
                variant("t0", &tiny(0)),
                variant("t1", &tiny(1)),
                variant("t2", &tiny(2)),
            ],
            "lynx",
            None,
        )
        .unwrap();
        let delta = |n: &str| c.row(n).unwrap().vs_baseline.clone().unwrap();
        assert_eq!(delta("better").claim, Claim::Better);
        let t = delta("t1");
        assert!((t.test.p_value - 0.03125).abs() < 1e-12 && (t.p_holm - 0.09375).abs() < 1e-12, "{t:?}");
        assert_eq!(t.claim, Claim::NotSignificant);
        assert!(t.q_bh <= t.p_holm);
        assert!(c.row("lynx").unwrap().vs_baseline.is_none());
        assert!(Comparison::new(vec![], "lynx", None).is_err());
    }

    #[test]
    fn seeds_fold_into_their_variant_and_can_veto_a_claim() {
        let base: Vec<bool> = (0..400).map(|i| i % 2 == 0).collect();
        let better: Vec<bool> = (0..400).map(|i| i % 2 == 0 || i % 5 == 1).collect();
        let worse_seed: Vec<bool> = (0..400).map(|i| i % 4 == 0).collect();
        let mut rs = vec![variant("lynx", &base), variant("lynx-s1", &better), variant("x", &better)];
        rs[1].seed_of = Some("lynx".into());
        rs.push(VariantResult { seed_of: Some("x".into()), ..variant("x-s1", &worse_seed) });
        rs.push(VariantResult { seed_of: Some("x".into()), ..variant("x-s2", &better) });
        let c = Comparison::new(rs, "lynx", None).unwrap();
        assert_eq!(c.rows.len(), 2, "replicates are not rows");
        let x = c.row("x").unwrap();
        assert_eq!(x.seeds.as_ref().unwrap().runs.len(), 3);
        let d = x.vs_baseline.as_ref().unwrap();
        assert!(d.p_holm < 0.05 && d.seeds.is_some());
        assert_eq!(d.claim, Claim::WithinSeedSpread, "{d:?}");
    }

    #[test]
    fn floor_and_vision_reliance_rows() {
        let base: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let mut lynx = variant("lynx", &base);
        // The swap keeps only a fifth of the right answers, and changes every answer text.
        let mut swapped = preds(&(0..200).map(|i| i % 10 == 0).collect::<Vec<_>>());
        for p in &mut swapped {
            p.prediction.push_str(" swapped");
        }
        lynx.swapped = Some(swapped);
        let blind = VariantResult {
            vision_input: VisionInput::None,
            ..variant("blind", &(0..200).map(|i| i % 5 == 0).collect::<Vec<_>>())
        };
        // The matched blind control sees a blank picture: a blind row too, with no vision reliance
        // even when a swap was (wrongly) handed in.
        let blank = VariantResult {
            vision_input: VisionInput::Blank,
            swapped: Some(preds(&[false; 200])),
            ..variant("blank", &(0..200).map(|i| i % 4 == 0).collect::<Vec<_>>())
        };
        let floor = Floor { description: "test floor".into(), predictions: preds(&[false; 200]) };
        let c = Comparison::new(vec![lynx, blind, blank], "lynx", Some(floor)).unwrap();
        let b = c.row("blank").unwrap();
        assert_eq!((b.role, b.vision_input), (Role::Blind, VisionInput::Blank));
        assert!(b.vision.is_none());
        assert!((b.vs_baseline.as_ref().unwrap().test.difference + 0.25).abs() < 1e-12, "{:?}", b.vs_baseline);
        assert_eq!(c.row("lynx").unwrap().vision_input, VisionInput::Picture);
        let v = c.row("lynx").unwrap().vision.as_ref().unwrap();
        assert!((v.drop.difference - 0.4).abs() < 1e-12 && v.drop.ci_low > 0.3, "{v:?}");
        assert_eq!(v.unchanged, 0.0);
        assert_eq!(c.row("blind").unwrap().role, Role::Blind);
        assert!(c.row("blind").unwrap().vision.is_none());
        let f = c.row(FLOOR_ROW).unwrap();
        assert_eq!(f.role, Role::Floor);
        assert_eq!(f.vs_baseline.as_ref().unwrap().claim, Claim::Worse);
        assert_eq!(c.floor.as_deref(), Some("test floor"));
    }
}
