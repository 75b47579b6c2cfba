//! Progress of a long run (`eval`, `compare`) on stderr, for a person or for a batch job's log.
//!
//! On a terminal it is an indicatif bar that redraws in place. Anywhere else -- a Slurm output
//! file, `kubectl logs`, a pipe -- redrawing would fill the log with control characters, so it
//! writes plain lines instead: one when the run starts, one every `LYNX_ZOO_PROGRESS_SECS` seconds
//! (default 10; 0 = after every batch) and one at the end (which a cleared bar leaves too):
//!
//! ```text
//! lynx: 0/550 items (0.0%), starting
//! lynx: 120/550 items (21.8%), 8.3 items/s, ETA 52s
//! lynx: 550/550 items (100.0%), 8.2 items/s, done in 1m07s
//! ```
//!
//! Rates count only the items done by this process, not those a resumed run found done.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The environment variable that sets the seconds between two plain progress lines.
const INTERVAL_VAR: &str = "LYNX_ZOO_PROGRESS_SECS";
/// Seconds between two plain progress lines when [`INTERVAL_VAR`] is unset or invalid.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Progress of one variant's (or task's) run: a bar on a terminal, plain lines in a log.
pub struct Progress {
    name: String,
    sink: Sink,
}

enum Sink {
    /// stderr is a terminal. `started`: the first update has been drawn. `lines` follows the run
    /// without printing, for the summary line left when the bar is cleared.
    Bar { bar: ProgressBar, started: bool, lines: Lines },
    /// stderr is a file or a pipe.
    Lines(Lines),
}

/// The state of plain-line progress.
struct Lines {
    /// Least time between two lines.
    interval: Duration,
    /// Whether the start line was written (at the first update with something left to do).
    announced: bool,
    /// The update that wrote the start line (or the latest, until then): when, and how many items
    /// were already done then (a resumed run).
    start: Option<(Instant, usize)>,
    /// When the last line was written.
    last_line: Option<Instant>,
    done: usize,
    total: usize,
}

impl Progress {
    /// `name`: the variant (or task) the progress is about.
    pub fn new(name: &str) -> Self {
        if std::io::stderr().is_terminal() {
            Self::bar(name)
        } else {
            Self::lines(name, interval())
        }
    }

    /// An indicatif bar: `NAME [=====>    ] 120/550 8.3/s ETA 52s`.
    fn bar(name: &str) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Progress { name: name.to_string(), sink: Sink::Bar { bar, started: false, lines: Lines::new(Duration::MAX) } }
    }

    /// Plain lines at least `interval` apart.
    fn lines(name: &str, interval: Duration) -> Self {
        Progress { name: name.to_string(), sink: Sink::Lines(Lines::new(interval)) }
    }

    /// Called after every batch with items done and items in total (total may change once, at the
    /// start).
    pub fn update(&mut self, done: usize, total: usize) {
        if let Some(line) = self.tick_at(done, total, Instant::now()) {
            eprintln!("{line}");
        }
    }

    /// Clears a bar and prints the final plain line.
    pub fn finish(self) {
        eprintln!("{}", self.finish_at(Instant::now()));
    }

    /// [`Progress::update`] at time `now`; returns the plain line to print, if one is due.
    fn tick_at(&mut self, done: usize, total: usize, now: Instant) -> Option<String> {
        match &mut self.sink {
            Sink::Bar { bar, started, lines } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if !*started {
                    // Items a resumed run found done must not count toward items/s.
                    bar.reset_eta();
                    *started = true;
                }
                lines.tick(&self.name, done, total, now); // for the summary only
                None
            }
            Sink::Lines(lines) => lines.tick(&self.name, done, total, now),
        }
    }

    /// [`Progress::finish`] at time `now`; returns the final plain line (also after a bar, which
    /// is cleared: the run's count, rate and duration stay on the terminal).
    fn finish_at(self, now: Instant) -> String {
        let lines = match self.sink {
            Sink::Bar { bar, lines, .. } => {
                bar.finish_and_clear();
                lines
            }
            Sink::Lines(lines) => lines,
        };
        lines.finish(&self.name, now)
    }
}

impl Lines {
    fn new(interval: Duration) -> Lines {
        Lines { interval, announced: false, start: None, last_line: None, done: 0, total: 0 }
    }

    /// An update at time `now`; returns the line to print, if one is due.
    fn tick(&mut self, name: &str, done: usize, total: usize, now: Instant) -> Option<String> {
        self.done = done;
        self.total = total;
        if !self.announced {
            // The total may still change (from 0): the rate counts from the start line.
            self.start = Some((now, done));
            if done >= total {
                return None; // nothing to do: `finish` says so
            }
            self.announced = true;
            self.last_line = Some(now);
            let what = if done == 0 { "starting" } else { "resuming" };
            return Some(format!("{name}: {}, {what}", self.count()));
        }
        // The last update is reported by `finish`, with the run's duration.
        let due = self.last_line.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if done >= total || !due {
            return None;
        }
        let (start, done_at_start) = self.start?;
        self.last_line = Some(now);
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let made = done.saturating_sub(done_at_start);
        let (rate, eta) = if made > 0 && elapsed > 0.0 {
            let rate = made as f64 / elapsed;
            (rate_text(rate), human((total - done) as f64 / rate))
        } else {
            ("- items/s".to_string(), "?".to_string())
        };
        Some(format!("{name}: {}, {rate}, ETA {eta}", self.count()))
    }

    /// The final line at time `now`.
    fn finish(&self, name: &str, now: Instant) -> String {
        let Some((start, done_at_start)) = self.start else {
            return format!("{name}: done");
        };
        let made = self.done.saturating_sub(done_at_start);
        if made == 0 {
            return format!("{name}: {}, already done", self.count());
        }
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        let rate = if elapsed > 0.0 { rate_text(made as f64 / elapsed) } else { "- items/s".to_string() };
        let end = if self.done < self.total { "stopped after" } else { "done in" };
        format!("{name}: {}, {rate}, {end} {}", self.count(), human(elapsed))
    }

    /// `120/550 items (21.8%)`.
    fn count(&self) -> String {
        let share = if self.total == 0 { 100.0 } else { self.done as f64 * 100.0 / self.total as f64 };
        format!("{}/{} items ({share:.1}%)", self.done, self.total)
    }
}

/// `8.3 items/s`, with more digits for slow runs (`0.05 items/s`).
fn rate_text(rate: f64) -> String {
    if rate >= 1.0 {
        format!("{rate:.1} items/s")
    } else {
        format!("{rate:.2} items/s")
    }
}

/// Seconds as `52s`, `4m05s` or `2h03m` (rounded up: an ETA should not promise too early).
fn human(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs.ceil().min(u64::MAX as f64) as u64 } else { 0 };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The interval between plain lines, from [`INTERVAL_VAR`], read once per process (a bad value
/// is warned about once).
fn interval() -> Duration {
    static INTERVAL: OnceLock<Duration> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        let value = std::env::var_os(INTERVAL_VAR).map(|v| v.to_string_lossy().into_owned());
        let (interval, warning) = interval_from(value.as_deref());
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        interval
    })
}

/// The interval that `value` of [`INTERVAL_VAR`] asks for (seconds, fractions allowed, 0 = every
/// update), and a warning when it is not a usable number (then the default is used).
fn interval_from(value: Option<&str>) -> (Duration, Option<String>) {
    let Some(v) = value else { return (DEFAULT_INTERVAL, None) };
    match v.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(d) => (d, None),
        None => (
            DEFAULT_INTERVAL,
            Some(format!(
                "warning: {INTERVAL_VAR} `{v}` is not a number of seconds (0 = a line after every batch); using {}",
                DEFAULT_INTERVAL.as_secs()
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `updates` of (seconds after the start, done, total) to a line reporter with `interval`
    /// seconds and returns the lines printed, the final one included (finishing at the last time).
    fn run(interval: f64, updates: &[(f64, usize, usize)]) -> Vec<String> {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut p = Progress::lines("lynx", Duration::from_secs_f64(interval));
        let mut out: Vec<String> = updates.iter().filter_map(|&(s, d, t)| p.tick_at(d, t, at(s))).collect();
        let end = updates.last().map_or(0.0, |u| u.0);
        out.push(p.finish_at(at(end)));
        out
    }

    #[test]
    fn lines_come_at_the_start_every_interval_and_at_the_end() {
        // One batch of 10 items every 2 s; a line at most every 10 s.
        let updates: Vec<(f64, usize, usize)> = (0..=10).map(|b| (b as f64 * 2.0, b * 10, 100)).collect();
        let lines = run(10.0, &updates);
        assert_eq!(
            lines,
            vec![
                "lynx: 0/100 items (0.0%), starting",
                "lynx: 50/100 items (50.0%), 5.0 items/s, ETA 10s",
                "lynx: 100/100 items (100.0%), 5.0 items/s, done in 20s",
            ]
        );
    }

    #[test]
    fn interval_zero_prints_every_update() {
        let lines = run(0.0, &[(0.0, 0, 30), (1.0, 10, 30), (1.5, 20, 30), (4.0, 30, 30)]);
        assert_eq!(
            lines,
            vec![
                "lynx: 0/30 items (0.0%), starting",
                "lynx: 10/30 items (33.3%), 10.0 items/s, ETA 2s",
                "lynx: 20/30 items (66.7%), 13.3 items/s, ETA 1s",
                "lynx: 30/30 items (100.0%), 7.5 items/s, done in 4s",
            ]
        );
    }

    #[test]
    fn a_line_waits_for_the_interval_even_when_updates_are_sparse() {
        // Updates at 0, 9.9 (too early), 10.1 (due: 10 s since the start line), 15 (too early), 20.2.
        let lines = run(10.0, &[(0.0, 0, 1000), (9.9, 1, 1000), (10.1, 2, 1000), (15.0, 3, 1000), (20.2, 4, 1000)]);
        let counts: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap_or_default()).collect();
        assert_eq!(counts, vec!["0/1000", "2/1000", "4/1000", "4/1000"], "{lines:?}");
        // 0.2 items/s: two digits; the ETA in hours and minutes; an unfinished run says so.
        assert_eq!(lines[2], "lynx: 4/1000 items (0.4%), 0.20 items/s, ETA 1h23m");
        assert_eq!(lines[3], "lynx: 4/1000 items (0.4%), 0.20 items/s, stopped after 21s");
    }

    #[test]
    fn a_resumed_run_rates_only_its_own_items() {
        let lines = run(0.0, &[(0.0, 400, 500), (10.0, 450, 500), (20.0, 500, 500)]);
        assert_eq!(
            lines,
            vec![
                "lynx: 400/500 items (80.0%), resuming",
                "lynx: 450/500 items (90.0%), 5.0 items/s, ETA 10s",
                "lynx: 500/500 items (100.0%), 5.0 items/s, done in 20s",
            ]
        );
        assert_eq!(run(0.0, &[(0.0, 500, 500)]), vec!["lynx: 500/500 items (100.0%), already done"]);
        assert_eq!(run(0.0, &[]), vec!["lynx: done"]);
        // Empty benchmark or shard.
        assert_eq!(run(0.0, &[(0.0, 0, 0)]), vec!["lynx: 0/0 items (100.0%), already done"]);
    }

    #[test]
    fn the_total_may_change_at_the_start() {
        let lines = run(0.0, &[(0.0, 0, 0), (0.0, 0, 40), (2.0, 8, 40)]);
        assert_eq!(lines[0], "lynx: 0/40 items (0.0%), starting", "{lines:?}");
        assert_eq!(lines[1], "lynx: 8/40 items (20.0%), 4.0 items/s, ETA 8s");
    }

    #[test]
    fn a_bar_prints_no_lines_and_leaves_the_summary_line_when_cleared() {
        let t0 = Instant::now();
        let mut p = Progress::bar("lynx");
        if let Sink::Bar { bar, .. } = &p.sink {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        for (s, done) in [(0.0, 0), (1.0, 40), (2.0, 80), (4.0, 100)] {
            assert_eq!(p.tick_at(done, 100, t0 + Duration::from_secs_f64(s)), None, "a bar prints no lines");
        }
        let last = p.finish_at(t0 + Duration::from_secs(4));
        assert_eq!(last, "lynx: 100/100 items (100.0%), 25.0 items/s, done in 4s");
    }

    #[test]
    fn no_rate_before_an_item_is_done() {
        let lines = run(0.0, &[(0.0, 0, 10), (1.0, 0, 10)]);
        assert_eq!(lines[1], "lynx: 0/10 items (0.0%), - items/s, ETA ?");
    }

    #[test]
    fn durations_read_like_a_clock() {
        assert_eq!(human(0.0), "0s");
        assert_eq!(human(51.2), "52s");
        assert_eq!(human(245.0), "4m05s");
        assert_eq!(human(7380.0), "2h03m");
        assert_eq!(human(f64::INFINITY), "0s");
    }

    #[test]
    fn the_interval_comes_from_the_environment_or_falls_back_with_a_warning() {
        assert_eq!(interval_from(None), (DEFAULT_INTERVAL, None));
        assert_eq!(interval_from(Some("0")), (Duration::ZERO, None));
        assert_eq!(interval_from(Some(" 2.5 ")), (Duration::from_millis(2500), None));
        for bad in ["", "ten", "-1", "nan", "inf", "1e30"] {
            let (d, warning) = interval_from(Some(bad));
            assert_eq!(d, DEFAULT_INTERVAL, "{bad}");
            let w = warning.unwrap_or_default();
            assert!(w.starts_with("warning: LYNX_ZOO_PROGRESS_SECS") && w.contains(&format!("`{bad}`")), "{w}");
            assert!(w.ends_with("using 10"), "{w}");
        }
    }
}
