//! The foundation's English (`lynx-zoo data text --foundation`): ordinary English far beyond the
//! benchmark's templates, for pretraining the backbones that every variant starts from.
//!
//! Lynx's held-out results lean on Vicuna already knowing English; a backbone that met only the
//! benchmark's few templates splits a new wording into fragments and answers the wrong kind of
//! question. So the foundation text adds, to the world's sentences and scene descriptions:
//! - **paraphrase families**: many more ways to ask each image question (question cores, framing
//!   phrases around them, format instructions), each answered from a picture described in words;
//! - **everyday sentences and questions** full of function words, and using every word of the
//!   held-out phrasings in other contexts ("reply", "colour", "digits", "outnumber", ...).
//!
//! It never holds a held-out phrasing itself: every line is checked against the held-out question
//! templates and format instructions (their literal pieces around the slots, in order) and redrawn
//! if it matches (`HeldoutGuard`); the tests prove no line matches and every held-out word occurs.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::generate::{phrase, Knobs, Split};
use super::phrasing::{fill, instruction_texts, paraphrases, templates, Instruction, Phrasing};
use super::scene::{Color, Shape};
use super::tasks::{QuestionClass, Task};
use super::text::{described_task, pick, TextInstruction, NAMES, PLACES, THINGS};

/// Phrases around a question (`{q}`; `{ql}` is the question with a lowercase first letter).
const FRAMES: &[&str] = &[
    "{q}",
    "{q}",
    "{q}",
    "Please answer this: {q}",
    "Here is a question. {q}",
    "Quick question: {q}",
    "Question: {q}",
    "I would like to know: {ql}",
    "Help me with this one. {q}",
    "{q} Thanks!",
    "{q} Please be brief.",
    "Let me ask you something. {q}",
    "One more thing: {ql}",
];

/// Phrases around a question about a picture (besides `FRAMES`).
const PICTURE_FRAMES: &[&str] = &[
    "Look at the picture and answer. {q}",
    "Based on the picture, {ql}",
    "From the description, {ql}",
    "Think about the scene. {q}",
];

fn framed(rng: &mut ChaCha8Rng, question: &str, picture: bool) -> String {
    let frame = if picture && rng.random_bool(0.25) { *pick(rng, PICTURE_FRAMES) } else { *pick(rng, FRAMES) };
    frame.replace("{ql}", &lower_first(question)).replace("{q}", question)
}

/// More format instructions, none of them a seen or held-out one.
fn format_texts(instruction: Instruction) -> &'static [&'static str] {
    match instruction {
        Instruction::OneWord => &[
            "One word, please.",
            "Keep it to one word.",
            "Give a one-word answer.",
            "Just one word.",
            "Only a single word.",
            "Say it in a single word.",
        ],
        Instruction::YesNo => &[
            "Just yes or no.",
            "Say only yes or no.",
            "A yes or a no is enough.",
            "Yes or no, please.",
            "Give a yes or no answer.",
        ],
        Instruction::Number => &[
            "Give a number.",
            "Just the number, please.",
            "Answer in digits.",
            "Write the number in digits.",
            "Only the number.",
            "A number is enough.",
        ],
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A question about a described picture in one of the paraphrase families, with its target: the
/// bare answer when a format instruction follows, else the task's sentence.
fn paraphrased_question(rng: &mut ChaCha8Rng, task: &Task) -> (String, String) {
    let cores = paraphrases(task.class);
    let core = *pick(rng, cores);
    let core = fill(core, &task.slots);
    let question = framed(rng, &core, true);
    if rng.random_bool(0.35) {
        let ins = task.class.instruction();
        let text = if rng.random_bool(0.5) {
            *pick(rng, format_texts(ins))
        } else {
            *pick(rng, instruction_texts(ins, Phrasing::Seen))
        };
        (format!("{question} {text}"), task.response(Some(ins)))
    } else {
        (question, task.response(None))
    }
}

/// A question about a picture described in words: half in the training templates, half in the
/// paraphrase families.
pub fn scene_question(rng: &mut ChaCha8Rng) -> TextInstruction {
    let task = described_task(rng);
    let (question, response) = if rng.random_bool(0.5) {
        let (q, ins, _) = phrase(&task, Split::Train, rng, &Knobs::default());
        (q, task.response(ins))
    } else {
        paraphrased_question(rng, &task)
    };
    TextInstruction { instruction: format!("Picture: {}. {question}", task.caption), response }
}

/// Everyday sentences, with slots {name} {other} {thing} {things} {place} {color} {shape} {n} {m}
/// {word}: function words, and every word of the held-out phrasings in other contexts.
const SENTENCES: &[&str] = &[
    "Can you tell me the way to the {place}?",
    "{name} told me a story about a {thing}.",
    "Tell me what you did in the {place} today.",
    "Please tell {other} that the {thing} is ready.",
    "{name} replied to the letter from {other}.",
    "Please reply before the end of the week.",
    "{other} did not respond to the message from {name}.",
    "The teacher asked us to respond in writing.",
    "Only {name} came to the {place} on time.",
    "The {place} is open only in the morning.",
    "The number {big} has {digits} digits.",
    "Write the digits from 0 to 9 in a row.",
    "The colour of the {thing} is {color}.",
    "{name} painted the door {color}.",
    "The wall of the {place} was painted {color} last year.",
    "Each item in the {place} has a small label.",
    "{name} put one item after another into the box.",
    "In the {place}, the cats outnumber the dogs.",
    "At the party, the children outnumber the adults.",
    "The {thing} sits on the table next to the window.",
    "{name} likes to sit near {other}.",
    "The keys can be found in the {place}.",
    "Where can I find a {thing}?",
    "Compared with {other}, {name} is tall.",
    "The word {word} appears on the sign near the {place}.",
    "A sign in the {place} says {word}.",
    "The text on the box is printed in large letters.",
    "The train travels toward the city every hour.",
    "The bird travels south in the winter.",
    "The moon came into view above the {place}.",
    "{name} arrived earlier than {other}.",
    "Lights flash up in the sky one after another.",
    "In total, {n} people came to the {place}.",
    "Describe the {place} in a few words.",
    "Would you call {name} a good friend?",
    "Which side of the road is the {place} on?",
    "This video shows {n} {things} on a table.",
    "What a big {thing} that is!",
    "There are {n} {things} and {m} cups in the {place}.",
    "{name} and {other} were the first to arrive.",
    "Between the two {things}, one is new and one is old.",
    "The {things} appear one by one on the shelf.",
    "You can see the {place} from the hill.",
    "The picture shows a {color} {shape} on a white page.",
    "{name} drew a {shape} and {other} drew a bigger one.",
    "This {thing} is greater in price than that one.",
    "A larger {thing} is harder to carry.",
    "What does {name} want for dinner?",
    "The answer is yes, and {name} is happy.",
    "No, the {thing} is not in the {place}.",
    "How many {things} does {name} have?",
    "Is there a {thing} in the {place}?",
    "{name} found a {color} {thing} in the {place}.",
    "The {shape} moves to the left, then to the right.",
    "Some {things} are small, and some are big.",
    "The small {thing} was in the {place} the whole day.",
    "Which {thing} is yours, the {color} one or the other one?",
    "It was the first time {name} saw the {place}.",
    "The cars move slowly in the rain.",
    "{name} will move to a new house in the spring.",
    "{name} packed her things and left the {place}.",
    "Put your things in the bag, please.",
];

/// One everyday sentence.
pub fn english_sentence(rng: &mut ChaCha8Rng) -> String {
    let name = *pick(rng, NAMES);
    let others: Vec<&str> = NAMES.iter().copied().filter(|&o| o != name).collect();
    let other = *pick(rng, &others);
    let thing = *pick(rng, THINGS);
    let big = rng.random_range(10..100_000u32);
    let slots: Vec<(&'static str, String)> = vec![
        ("name", name.into()),
        ("other", other.into()),
        ("things", thing.1.into()),
        ("thing", thing.0.into()),
        ("place", (*pick(rng, PLACES)).into()),
        ("color", pick(rng, &Color::ALL).name().into()),
        ("shape", pick(rng, &Shape::ALL).name().into()),
        ("n", rng.random_range(2..9u32).to_string()),
        ("m", rng.random_range(2..9u32).to_string()),
        ("word", (*pick(rng, crate::benchmark::classes::WORDS)).into()),
        ("big", big.to_string()),
        ("digits", big.to_string().len().to_string()),
    ];
    let sentence = *pick(rng, SENTENCES);
    fill(sentence, &slots)
}

/// A passage of 3-6 everyday sentences.
pub fn english_passage(rng: &mut ChaCha8Rng) -> String {
    let k = rng.random_range(3..=6);
    (0..k).map(|_| english_sentence(rng)).collect::<Vec<_>>().join(" ")
}

/// An everyday question about a short context, with its answer; a format instruction (seen or
/// from the paraphrase families) asks for the bare answer.
pub fn english_question(rng: &mut ChaCha8Rng) -> TextInstruction {
    let name = *pick(rng, NAMES);
    let others: Vec<&str> = NAMES.iter().copied().filter(|&o| o != name).collect();
    let other = *pick(rng, &others);
    let thing = *pick(rng, THINGS);
    let color = pick(rng, &Color::ALL).name();
    let place = *pick(rng, PLACES);
    let (context, question, sentence, short, ins) = match rng.random_range(0..6) {
        0 => (
            format!("{name} painted the {} {color}.", thing.0),
            format!("What colour is the {} now?", thing.0),
            format!("The {} is {color}.", thing.0),
            color.to_string(),
            Instruction::OneWord,
        ),
        1 => (
            format!("{other} wrote to {name}, and {name} replied the next day."),
            "Who replied?".to_string(),
            format!("{name} replied."),
            name.to_string(),
            Instruction::OneWord,
        ),
        2 => {
            let big = rng.random_range(1..100_000u32).to_string();
            (
                format!("The number is {big}."),
                "How many digits does the number have?".to_string(),
                format!("The number has {} digits.", big.len()),
                big.len().to_string(),
                Instruction::Number,
            )
        }
        3 => {
            let (n, m) = (rng.random_range(3..9u32), rng.random_range(1..3u32));
            (
                format!("In the {place}, {n} cats outnumber {m} dogs."),
                "How many cats are there?".to_string(),
                format!("There are {n} cats."),
                n.to_string(),
                Instruction::Number,
            )
        }
        4 => {
            let found = rng.random_bool(0.5);
            let there = if found { place } else { pick(rng, PLACES) };
            let yes = there == place;
            (
                format!("The {} can be found in the {there}.", thing.0),
                format!("Is the {} in the {place}?", thing.0),
                if yes {
                    format!("Yes, the {} is in the {place}.", thing.0)
                } else {
                    format!("No, the {} is in the {there}.", thing.0)
                },
                if yes { "yes" } else { "no" }.to_string(),
                Instruction::YesNo,
            )
        }
        _ => (
            format!("A sign in the {place} says {}.", pick(rng, crate::benchmark::classes::WORDS)),
            "Which word is on the sign?".to_string(),
            String::new(),
            String::new(),
            Instruction::OneWord,
        ),
    };
    let (sentence, short) = if sentence.is_empty() {
        // The sign's word: the context's last word, without its full stop.
        let word = context.trim_end_matches('.').rsplit(' ').next().unwrap_or("").to_string();
        (format!("The sign says {word}."), word)
    } else {
        (sentence, short)
    };
    let question = framed(rng, &question, false);
    if rng.random_bool(0.35) {
        let text = if rng.random_bool(0.5) {
            *pick(rng, format_texts(ins))
        } else {
            *pick(rng, instruction_texts(ins, Phrasing::Seen))
        };
        TextInstruction { instruction: format!("{context} {question} {text}"), response: short }
    } else {
        TextInstruction { instruction: format!("{context} {question}"), response: sentence }
    }
}

/// The held-out phrasings (question templates and format instructions) as the literal pieces
/// around their slots, lowercased: a line "holds" one when it contains every piece, in order.
pub struct HeldoutGuard {
    phrasings: Vec<Vec<String>>,
}

impl Default for HeldoutGuard {
    fn default() -> Self {
        let mut phrasings: Vec<Vec<String>> = QuestionClass::ALL
            .iter()
            .flat_map(|&c| templates(c, Phrasing::Heldout).iter().map(|t| fragments(t)))
            .collect();
        for i in Instruction::ALL {
            phrasings.extend(instruction_texts(i, Phrasing::Heldout).iter().map(|t| fragments(t)));
        }
        HeldoutGuard { phrasings }
    }
}

impl HeldoutGuard {
    /// The held-out phrasing `line` holds, if any.
    pub fn held(&self, line: &str) -> Option<&[String]> {
        let line = line.to_lowercase();
        self.phrasings.iter().find(|f| holds(&line, f)).map(|f| f.as_slice())
    }

    /// Every word (lowercase letters and digits) of the held-out phrasings, slots left out.
    pub fn words(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .phrasings
            .iter()
            .flatten()
            .flat_map(|f| f.split(|c: char| !c.is_ascii_alphanumeric()).map(str::to_string).collect::<Vec<_>>())
            .filter(|w| !w.is_empty())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The literal pieces of a template around its `{slot}`s, lowercased and trimmed.
fn fragments(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push(rest[..open].to_lowercase());
        rest = rest[open..].split_once('}').map_or("", |(_, r)| r);
    }
    out.push(rest.to_lowercase());
    out.into_iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect()
}

/// Whether `line` (lowercase) holds every fragment, in order.
fn holds(line: &str, fragments: &[String]) -> bool {
    let mut at = 0;
    fragments.iter().all(|f| match line[at..].find(f.as_str()) {
        Some(k) => {
            at += k + f.len();
            true
        }
        None => false,
    })
}

/// Draws from `make` until a line holds no held-out phrasing (a few redraws at most: the families
/// are written apart from the held-out pool, and a match is a rare combination of a frame and a
/// core). `None` after 100 draws, which the tests rule out.
pub fn guarded<T>(
    guard: &HeldoutGuard,
    rng: &mut ChaCha8Rng,
    text: impl Fn(&T) -> String,
    make: impl Fn(&mut ChaCha8Rng) -> T,
) -> Option<T> {
    (0..100).map(|_| make(rng)).find(|item| guard.held(&text(item)).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn families_are_apart_from_the_training_and_heldout_pools() {
        let guard = HeldoutGuard::default();
        for class in QuestionClass::ALL {
            for core in paraphrases(class) {
                assert!(!templates(class, Phrasing::Seen).contains(core), "{core}");
                assert!(guard.held(core).is_none(), "{core} holds a held-out phrasing");
            }
        }
        for ins in Instruction::ALL {
            for text in format_texts(ins) {
                assert!(guard.held(text).is_none() && !instruction_texts(ins, Phrasing::Seen).contains(text), "{text}");
            }
        }
    }

    #[test]
    fn every_core_fills_its_slots() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..400 {
            let t = scene_question(&mut rng);
            assert!(!t.instruction.contains('{') && !t.response.is_empty(), "{t:?}");
        }
        for _ in 0..400 {
            let t = english_question(&mut rng);
            assert!(!t.instruction.contains('{') && !t.response.is_empty(), "{t:?}");
            assert!(!english_sentence(&mut rng).contains('{'));
        }
    }

    #[test]
    fn the_guard_catches_a_heldout_phrasing_and_passes_others() {
        let guard = HeldoutGuard::default();
        assert!(guard.held("Picture: a red square. Can you tell me the shape of the red item?").is_some());
        assert!(guard.held("Picture: a red square. How many squares can you see? Respond with digits only.").is_some());
        assert!(guard.held("Can you tell me the way to the park?").is_none());
        let words = guard.words();
        for w in ["reply", "respond", "digits", "colour", "outnumber", "tell", "me"] {
            assert!(words.iter().any(|x| x == w), "{w} missing from {words:?}");
        }
    }
}
