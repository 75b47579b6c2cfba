//! Shards of a benchmark and the `--shard` flag that picks one.
//!
//! A [`Shard`] `I/N` is the records whose position modulo `N` is `I`; `N` shard runs merge back
//! into one predictions file, byte-identical to an unsharded run (`lynx-zoo merge`).
//!
//! A [`ShardSpec`] is what the user wrote: a fixed `I/N`, or `auto` / `auto/N`, which asks the
//! batch scheduler which task this process is ([`ShardSpec::resolve`]):
//!
//! ```text
//! Slurm job array (sbatch --array=A-B)   SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN  of  SLURM_ARRAY_TASK_COUNT
//! Kubernetes Indexed Job                 JOB_COMPLETION_INDEX                        of  N from `auto/N`
//! ```
//!
//! Kubernetes does not tell a pod how many completions its Job has, so the count comes from
//! `auto/N`, written next to `completions: N` in the manifest. There is deliberately no
//! environment fallback for it (such as a `LYNX_ZOO_SHARD_COUNT`): a second place for the count is
//! a second place to get it wrong, and the command line is already in the same manifest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shard `index` of `count`: the records whose position modulo `count` is `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole benchmark.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the record at `position` belongs to this shard.
    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// What a shard's files add to the whole run's names: `` for the whole benchmark, else
    /// `.shard-I-of-N` (the files themselves: [`crate::results::predictions_file`]).
    pub fn suffix(&self) -> String {
        if self.count == 1 {
            String::new()
        } else {
            format!(".shard-{}-of-{}", self.index, self.count)
        }
    }

    /// The shard of a suffix `.shard-I-of-N` (0 <= I < N, N > 1); `None` for anything else.
    pub fn from_suffix(suffix: &str) -> Option<Shard> {
        let (i, n) = suffix.strip_prefix(".shard-")?.split_once("-of-")?;
        let (index, count) = (i.parse().ok()?, n.parse().ok()?);
        (count > 1 && index < count).then_some(Shard { index, count })
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `I/N` with 0 <= I < N.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument {
            what: "--shard",
            value: s.into(),
            expected: "I/N with 0 <= I < N, e.g. 0/2".into(),
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The value of `--shard`: a fixed shard, or one read from the batch scheduler at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`: shard I (0-based) of N.
    Fixed(Shard),
    /// `auto` (`count: None`) or `auto/N`: a Slurm job array task or a Kubernetes Indexed Job
    /// completion. A Kubernetes job needs `N`; with Slurm, `N` must equal the array's size.
    Auto {
        /// `N` of `auto/N`.
        count: Option<usize>,
    },
}

/// Slurm's job array variables (sbatch(1), "OUTPUT ENVIRONMENT VARIABLES").
const SLURM_ID: &str = "SLURM_ARRAY_TASK_ID";
const SLURM_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const SLURM_MAX: &str = "SLURM_ARRAY_TASK_MAX";
const SLURM_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const SLURM_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// Set in every Slurm job, array or not: only used for a better hint.
const SLURM_JOB: &str = "SLURM_JOB_ID";
/// The 0-based completion index of a pod of a Kubernetes Indexed Job.
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

/// What `--shard` accepts, for error messages.
const SPEC_FORMS: &str = "I/N with 0 <= I < N (e.g. 0/2), `auto` (Slurm job array) or `auto/N` (N shards; \
                          needed for a Kubernetes Indexed Job)";

impl ShardSpec {
    /// The shard this process evaluates. A fixed `I/N` is returned as is; `auto` reads the
    /// scheduler's variables through `env` (which returns a variable's value, `None` when unset):
    /// first a Slurm job array, then a Kubernetes Indexed Job. A missing or malformed variable, a
    /// strided or gapped Slurm array, an index outside the array and a count that disagrees with
    /// `auto/N` are [`Error::InvalidArgument`] errors that name the variable and suggest a fix.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Shard> {
        let count = match *self {
            ShardSpec::Fixed(shard) => return Ok(shard),
            ShardSpec::Auto { count } => count,
        };
        let bad = |expected: String| Error::InvalidArgument { what: "--shard", value: self.to_string(), expected };
        if count == Some(0) {
            return Err(bad("N of `auto/N` must be at least 1".into()));
        }
        // A set-but-empty variable counts as set: it is malformed, not absent.
        let number = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                    bad(format!("{name} `{v}` is not a whole number (the scheduler sets it; is it overridden?)"))
                }),
            }
        };

        if let Some(id) = number(SLURM_ID)? {
            let min = number(SLURM_MIN)?.unwrap_or(0);
            if let Some(step) = number(SLURM_STEP)? {
                if step != 1 {
                    return Err(bad(format!(
                        "{SLURM_STEP} `{step}`: a strided Slurm array (`--array=A-B:{step}`) cannot be mapped onto \
                         shards; submit with `--array=0-{{N-1}}` and no step"
                    )));
                }
            }
            let array_count = match (number(SLURM_COUNT)?, count) {
                (Some(c), _) => c,
                (None, Some(n)) => n,
                (None, None) => {
                    return Err(bad(format!(
                        "{SLURM_ID} is set but {SLURM_COUNT} is not; give the number of shards with `--shard auto/N`"
                    )))
                }
            };
            if array_count == 0 {
                return Err(bad(format!("{SLURM_COUNT} `0`: the array has no tasks")));
            }
            if let Some(max) = number(SLURM_MAX)? {
                if max < min || max - min + 1 != array_count {
                    return Err(bad(format!(
                        "the Slurm array is not contiguous ({SLURM_MIN} `{min}`, {SLURM_MAX} `{max}`, {SLURM_COUNT} \
                         `{array_count}`); submit with `--array={min}-{}` (no step, no gaps)",
                        min + array_count - 1
                    )));
                }
            }
            if let Some(n) = count {
                if n != array_count {
                    return Err(bad(format!(
                        "`auto/{n}` but the Slurm array has {array_count} tasks ({SLURM_COUNT}); use `--shard auto` \
                         or `--array=0-{}`",
                        n - 1
                    )));
                }
            }
            if id < min || id - min >= array_count {
                return Err(bad(format!(
                    "{SLURM_ID} `{id}` is outside the array {min}..={} ({SLURM_MIN} `{min}`, {SLURM_COUNT} \
                     `{array_count}`)",
                    min + array_count - 1
                )));
            }
            let shard = Shard { index: id - min, count: array_count };
            tracing::info!(%shard, task = id, "--shard auto: Slurm job array task");
            return Ok(shard);
        }

        if let Some(index) = number(K8S_INDEX)? {
            let Some(n) = count else {
                return Err(bad(format!(
                    "{K8S_INDEX} is set (a Kubernetes Indexed Job) but the number of shards is unknown; use \
                     `--shard auto/N` with N the Job's `completions`"
                )));
            };
            if index >= n {
                return Err(bad(format!(
                    "{K8S_INDEX} `{index}` is not below N = {n}; does `completions` in the Job match `auto/{n}`?"
                )));
            }
            let shard = Shard { index, count: n };
            tracing::info!(%shard, "--shard auto: Kubernetes Indexed Job completion");
            return Ok(shard);
        }

        let hint = if env(SLURM_JOB).is_some() {
            "this Slurm job is not an array: submit it with `sbatch --array=0-{N-1}`, or use --shard I/N"
        } else {
            "use --shard I/N"
        };
        Err(bad(format!("`--shard auto` found neither {SLURM_ID} nor {K8S_INDEX}; {hint}")))
    }

    /// [`ShardSpec::resolve`] with the process's environment.
    pub fn resolve_from_env(&self) -> Result<Shard> {
        self.resolve(&|name| std::env::var(name).ok())
    }
}

impl From<Shard> for ShardSpec {
    fn from(shard: Shard) -> Self {
        ShardSpec::Fixed(shard)
    }
}

impl FromStr for ShardSpec {
    type Err = Error;

    /// Parses `I/N` (0 <= I < N), `auto` or `auto/N` (N >= 1).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument { what: "--shard", value: s.into(), expected: SPEC_FORMS.into() };
        let t = s.trim();
        if t == "auto" {
            return Ok(ShardSpec::Auto { count: None });
        }
        if let Some(n) = t.strip_prefix("auto/") {
            return match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(ShardSpec::Auto { count: Some(n) }),
                _ => Err(bad()),
            };
        }
        t.parse::<Shard>().map(ShardSpec::Fixed).map_err(|_| bad())
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardSpec::Fixed(shard) => shard.fmt(f),
            ShardSpec::Auto { count: None } => f.write_str("auto"),
            ShardSpec::Auto { count: Some(n) } => write!(f, "auto/{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert!(s.contains(4) && !s.contains(3));
        assert_eq!((s.suffix(), Shard::ALL.suffix()), (".shard-1-of-3".into(), String::new()));
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains("--shard"), "{err}");
        }
        let covered: usize =
            (0..3).map(|i| (0..10).filter(|p| Shard { index: i, count: 3 }.contains(*p)).count()).sum();
        assert_eq!(covered, 10);
    }

    #[test]
    fn shard_suffixes_parse() {
        assert_eq!(Shard::from_suffix(".shard-2-of-3"), Some(Shard { index: 2, count: 3 }));
        for bad in [".shard-3-of-3", ".shard-0-of-1", ".shard-x", "", ".shard-1-of-2.jsonl"] {
            assert_eq!(Shard::from_suffix(bad), None, "{bad}");
        }
        let s = Shard { index: 1, count: 4 };
        assert_eq!(Shard::from_suffix(&s.suffix()), Some(s));
    }

    fn spec(s: &str) -> ShardSpec {
        s.parse().unwrap()
    }

    /// Resolves `spec` in an environment holding exactly `vars`.
    fn resolve(spec_text: &str, vars: &[(&str, &str)]) -> Result<Shard> {
        let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        spec(spec_text).resolve(&env)
    }

    /// The error message of resolving `spec` in `vars`; asserts it names each of `needles`.
    fn resolve_err(spec_text: &str, vars: &[(&str, &str)], needles: &[&str]) -> String {
        let err = resolve(spec_text, vars).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { what: "--shard", .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("invalid --shard `{spec_text}`: ")), "{msg}");
        for n in needles {
            assert!(msg.contains(n), "`{n}` not in: {msg}");
        }
        msg
    }

    fn shard(index: usize, count: usize) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn specs_parse_and_display_round_trip() {
        assert_eq!(spec("auto"), ShardSpec::Auto { count: None });
        assert_eq!(spec("auto/4"), ShardSpec::Auto { count: Some(4) });
        assert_eq!(spec(" 2/5 "), ShardSpec::Fixed(shard(2, 5)));
        assert_eq!(ShardSpec::from(shard(0, 2)), spec("0/2"));
        for s in ["auto", "auto/4", "2/5", "0/1"] {
            assert_eq!(spec(s).to_string(), s);
        }
        for bad in ["auto/0", "auto/x", "auto/", "Auto", "autox", "3/3", "1", "a/b", "-1/2", ""] {
            let err = bad.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(err.contains("--shard") && err.contains("auto/N") && err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn fixed_shards_ignore_the_environment() {
        assert_eq!(resolve("1/3", &[(SLURM_ID, "7"), (SLURM_COUNT, "8"), (K8S_INDEX, "x")]).unwrap(), shard(1, 3));
    }

    #[test]
    fn slurm_arrays_map_onto_zero_based_shards() {
        // `--array=1-4`: tasks 1..4 are shards 0..3 of 4.
        for id in 1..=4 {
            let id_text = id.to_string();
            let vars = [(SLURM_ID, id_text.as_str()), (SLURM_MIN, "1"), (SLURM_MAX, "4"), (SLURM_COUNT, "4")];
            assert_eq!(resolve("auto", &vars).unwrap(), shard(id - 1, 4));
            assert_eq!(resolve("auto/4", &vars).unwrap(), shard(id - 1, 4));
        }
        // MIN defaults to 0 when absent; a step of 1 is fine; Slurm wins over Kubernetes.
        let vars = [(SLURM_ID, "2"), (SLURM_COUNT, "3"), (SLURM_STEP, "1"), (K8S_INDEX, "0")];
        assert_eq!(resolve("auto", &vars).unwrap(), shard(2, 3));
        // Without COUNT, `auto/N` gives it.
        assert_eq!(resolve("auto/3", &[(SLURM_ID, "1")]).unwrap(), shard(1, 3));
        // A one-task array is the whole benchmark.
        assert_eq!(resolve("auto", &[(SLURM_ID, "5"), (SLURM_MIN, "5"), (SLURM_COUNT, "1")]).unwrap(), Shard::ALL);
    }

    #[test]
    fn bad_slurm_arrays_are_errors_that_name_the_variable() {
        resolve_err("auto", &[(SLURM_ID, "x"), (SLURM_COUNT, "3")], &["SLURM_ARRAY_TASK_ID `x`", "whole number"]);
        resolve_err("auto", &[(SLURM_ID, ""), (SLURM_COUNT, "3")], &["SLURM_ARRAY_TASK_ID ``"]);
        resolve_err("auto", &[(SLURM_ID, "1"), (SLURM_MIN, "-1"), (SLURM_COUNT, "3")], &["SLURM_ARRAY_TASK_MIN `-1`"]);
        resolve_err("auto", &[(SLURM_ID, "1"), (SLURM_COUNT, "three")], &["SLURM_ARRAY_TASK_COUNT `three`"]);
        resolve_err("auto", &[(SLURM_ID, "1"), (SLURM_COUNT, "0")], &["SLURM_ARRAY_TASK_COUNT `0`"]);
        resolve_err("auto", &[(SLURM_ID, "1")], &["SLURM_ARRAY_TASK_COUNT is not", "auto/N"]);
        // `--array=0-15:4`.
        let strided = [(SLURM_ID, "4"), (SLURM_MIN, "0"), (SLURM_MAX, "12"), (SLURM_COUNT, "4"), (SLURM_STEP, "4")];
        resolve_err("auto", &strided, &["SLURM_ARRAY_TASK_STEP `4`", "strided", "--array=0-{N-1}"]);
        // `--array=0,2,5`: no step variable, but MAX - MIN + 1 != COUNT.
        let gapped = [(SLURM_ID, "2"), (SLURM_MIN, "0"), (SLURM_MAX, "5"), (SLURM_COUNT, "3")];
        resolve_err("auto", &gapped, &["not contiguous", "SLURM_ARRAY_TASK_MAX `5`", "--array=0-2"]);
        // Ids outside [MIN, MIN + COUNT).
        let vars = |id| [(SLURM_ID, id), (SLURM_MIN, "1"), (SLURM_COUNT, "3")];
        resolve_err("auto", &vars("0"), &["SLURM_ARRAY_TASK_ID `0`", "outside the array 1..=3"]);
        resolve_err("auto", &vars("4"), &["SLURM_ARRAY_TASK_ID `4`", "outside the array 1..=3"]);
        // `auto/N` must agree with the array.
        resolve_err("auto/4", &vars("1"), &["`auto/4`", "3 tasks", "SLURM_ARRAY_TASK_COUNT"]);
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_count() {
        assert_eq!(resolve("auto/4", &[(K8S_INDEX, "0")]).unwrap(), shard(0, 4));
        assert_eq!(resolve("auto/4", &[(K8S_INDEX, "3")]).unwrap(), shard(3, 4));
        resolve_err("auto", &[(K8S_INDEX, "1")], &["JOB_COMPLETION_INDEX is set", "auto/N", "completions"]);
        resolve_err("auto/4", &[(K8S_INDEX, "4")], &["JOB_COMPLETION_INDEX `4`", "not below N = 4", "completions"]);
        resolve_err("auto/4", &[(K8S_INDEX, "one")], &["JOB_COMPLETION_INDEX `one`", "whole number"]);
    }

    #[test]
    fn no_scheduler_is_an_error_with_a_hint() {
        let msg = resolve_err("auto", &[], &["found neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"]);
        assert!(msg.ends_with("use --shard I/N"), "{msg}");
        resolve_err("auto/2", &[(SLURM_JOB, "123")], &["not an array", "sbatch --array=0-{N-1}"]);
    }
}
