//! The scorer against degenerate answers (issue 12): the kitchen-sink string, its question-aware
//! variant, the question echoed back and an answer listing every option of the class each score at
//! or below the majority floor -- on the committed test split and on a split of a fresh seed.

use std::path::{Path, PathBuf};
use std::process::Command;

use lynx_zoo::benchmark::{Benchmark, QuestionClass, Record};
use lynx_zoo::eval::{MajorityFloor, Prediction};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn accuracy(bench: &Benchmark, answer: impl Fn(&Record) -> String) -> f64 {
    let correct = bench.records.iter().filter(|r| r.is_correct(&answer(r))).count();
    correct as f64 / bench.records.len() as f64
}

fn floor(bench: &Benchmark) -> f64 {
    let p: Vec<Prediction> = MajorityFloor::for_benchmark(bench).unwrap().predictions(bench, None);
    p.iter().filter(|p| p.correct).count() as f64 / p.len() as f64
}

/// Every candidate of every class, the numbers 0-999 and "big yes right".
fn kitchen_sink() -> String {
    let mut words: Vec<String> = Vec::new();
    for class in QuestionClass::ALL {
        for w in class.answer_space().option_names() {
            if !words.contains(&w) {
                words.push(w);
            }
        }
    }
    words.extend((0..1000).map(|n| n.to_string()));
    words.push("big yes right".into());
    words.join(" ")
}

/// The first shape the question names, for the two-way classes that name their options.
fn first_shape(question: &str) -> Option<String> {
    let q = question.to_lowercase();
    ["circle", "square", "triangle", "diamond", "hexagon"]
        .into_iter()
        .filter_map(|s| q.find(s).map(|at| (at, s)))
        .min()
        .map(|(_, s)| s.to_string())
}

fn every_option(r: &Record) -> String {
    let class = QuestionClass::from_name(r.class_or_all()).unwrap();
    let space = class.answer_space();
    let mut text = space.option_names().join(" ");
    if space.has_numbers() {
        text.push_str(" 0 1 2 3 4 5 6 7 8 9 10");
    }
    text
}

/// A gaming strategy: an answer for each record.
type Strategy<'a> = Box<dyn Fn(&Record) -> String + 'a>;

fn check(bench: &Benchmark) {
    let floor = floor(bench);
    let sink = kitchen_sink();
    let strategies: Vec<(&str, Strategy)> = vec![
        ("kitchen sink", Box::new(|_: &Record| sink.clone())),
        (
            "question-aware kitchen sink",
            Box::new(|r: &Record| match r.class_or_all() {
                "compare" | "order" => first_shape(&r.question).unwrap_or_default(),
                _ => format!("{} {sink}", r.question),
            }),
        ),
        ("question echoed", Box::new(|r: &Record| r.question.clone())),
        ("every option of the class", Box::new(every_option)),
        ("every option, one per word", Box::new(|r: &Record| every_option(r).replace(' ', "/"))),
    ];
    for (name, strategy) in &strategies {
        let acc = accuracy(bench, strategy);
        eprintln!("{}: {name} {:.1}% (floor {:.1}%)", bench.path.display(), acc * 100.0, floor * 100.0);
        assert!(acc <= floor, "{name} scores {:.1}% > majority floor {:.1}%", acc * 100.0, floor * 100.0);
    }
    // The floor itself is far from nothing and far from everything.
    assert!((0.1..0.5).contains(&floor), "{floor}");
}

#[test]
fn degenerate_answers_score_at_most_the_floor_on_the_committed_split() {
    check(&Benchmark::load(repo().join("data/test/annotations.jsonl")).unwrap());
}

fn generate(dir: &Path, seed: u64) -> Benchmark {
    let out = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(["data", "generate", "--split", "test", "--n", "550", "--seed", &seed.to_string(), "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Benchmark::load(dir.join("annotations.jsonl")).unwrap()
}

#[test]
fn degenerate_answers_score_at_most_the_floor_on_a_fresh_seed() {
    let t = tempfile::tempdir().unwrap();
    check(&generate(t.path(), 7));
}

#[test]
fn the_open_vqa_examples_keep_their_verdicts() {
    // docs/benchmark.md's examples: the rule only adds ways to be wrong for degenerate answers.
    let bench = Benchmark::load(repo().join("data/test/annotations.jsonl")).unwrap();
    let item = |i: usize| &bench.records[i];
    assert!(item(0).is_correct("The red object is a square."));
    assert!(item(0).is_correct("square"));
    assert!(!item(0).is_correct("square or circle"));
    assert!(item(1).is_correct("blue"));
    assert!(!item(1).is_correct("bluish"));
    // Item 2 asks for one word: the sentence ignores the format.
    assert!(item(2).is_correct("big"));
    assert!(item(2).is_correct("Large."));
    assert!(!item(2).is_correct("The white hexagon is big."));
    assert!(!item(2).is_correct("big"[..0].to_string().as_str()));
    // Item 3 asks for digits: "five" is a number, "5 hexagons" is not just a number.
    assert!(item(3).is_correct("5") && item(3).is_correct("five"));
    assert!(!item(3).is_correct("5 hexagons") && !item(3).is_correct("4 or 5"));
    assert!(item(4).is_correct("The yellow diamond is below the blue square."));
    assert!(item(4).is_correct("under"));
    assert!(!item(4).is_correct("below, or left"));
    assert!(item(5).is_correct("CAT") && !item(5).is_correct("cat dog"));
}
