//! The scoring rule: Open-VQA's containment, hardened so that a degenerate answer cannot game it.
//!
//! An answer is correct when, in this order,
//! 1. it has the format its question asked for, when the question carries a format instruction
//!    ("Answer in one word.", "Reply with a number."): [`super::follows`];
//! 2. normalised, it equals or contains (as whole words) an accepted answer ([`super::is_correct`]);
//! 3. it names none of the wrong options the question offers (`wrong_answers`: "small or big");
//! 4. it names no candidate of the class's [`AnswerSpace`] that the accepted answers do not name
//!    ("red blue green" is wrong for "blue"); and when every accepted answer is a number, it names
//!    no other number -- with or without an answer space, so counting questions of any Open-VQA
//!    file are covered.
//!
//! Every answer gets a [`Verdict`] that says which step failed, so a table can tell a wrong answer
//! from one that ignored its format.

use serde::{Deserialize, Serialize};

use super::answer_space::{is_number, AnswerSpace};
use super::format::{follows, Instruction};
use super::normalize::{is_correct, normalize_tokens};

/// What the scorer knows about one item.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// Accepted answers.
    pub answers: &'a [String],
    /// Options the question offers that are wrong.
    pub wrong: &'a [String],
    /// The candidates of the item's class, when known.
    pub space: Option<&'a AnswerSpace>,
    /// The format the question asks for, when any.
    pub instruction: Option<Instruction>,
}

/// The outcome of scoring one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Right, in the asked-for format, naming nothing else.
    Correct,
    /// Not in the format the question asked for.
    IgnoresFormat,
    /// Names no accepted answer.
    Wrong,
    /// Names an accepted answer and also a wrong option the question offered.
    NamesWrongOption,
    /// Names an accepted answer and also another candidate of the class (another colour, shape,
    /// number, ...).
    NamesOtherCandidate,
}

impl Verdict {
    /// Whether the answer counts as correct.
    pub fn is_correct(self) -> bool {
        self == Verdict::Correct
    }
}

impl Expected<'_> {
    /// Scores `prediction`.
    pub fn judge(&self, prediction: &str) -> Verdict {
        if let Some(instruction) = self.instruction {
            if !follows(instruction, prediction) {
                return Verdict::IgnoresFormat;
            }
        }
        if !is_correct(prediction, self.answers) {
            return Verdict::Wrong;
        }
        if is_correct(prediction, self.wrong) {
            return Verdict::NamesWrongOption;
        }
        let tokens = normalize_tokens(prediction);
        let references: Vec<Vec<String>> = self.answers.iter().map(|a| normalize_tokens(a)).collect();
        if let Some(space) = self.space {
            let allowed: std::collections::BTreeSet<_> = references.iter().flat_map(|r| space.named(r)).collect();
            if !space.named(&tokens).is_subset(&allowed) {
                return Verdict::NamesOtherCandidate;
            }
        }
        let numeric = references.iter().all(|r| matches!(r.as_slice(), [t] if is_number(t)));
        if numeric && tokens.iter().any(|t| is_number(t) && !references.iter().any(|r| &r[0] == t)) {
            return Verdict::NamesOtherCandidate;
        }
        Verdict::Correct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|x| x.to_string()).collect()
    }

    fn colours() -> AnswerSpace {
        AnswerSpace::new().with_words(&["red", "green", "blue", "yellow"])
    }

    #[test]
    fn naming_another_candidate_is_wrong() {
        let (answers, space) = (s(&["blue"]), colours());
        let e = Expected { answers: &answers, wrong: &[], space: Some(&space), instruction: None };
        assert_eq!(e.judge("The circle is blue."), Verdict::Correct);
        assert_eq!(e.judge("blue"), Verdict::Correct);
        assert_eq!(e.judge("red green blue yellow"), Verdict::NamesOtherCandidate);
        assert_eq!(e.judge("It is blue, not red."), Verdict::NamesOtherCandidate);
        assert_eq!(e.judge("bluish"), Verdict::Wrong);
        assert_eq!(e.judge("What color is the circle?"), Verdict::Wrong);
    }

    #[test]
    fn synonyms_of_the_answer_are_fine() {
        let answers = s(&["below", "under"]);
        let space = AnswerSpace::new().with_option(&["left"]).with_option(&["below", "under", "beneath"]);
        let e = Expected { answers: &answers, wrong: &[], space: Some(&space), instruction: None };
        assert_eq!(e.judge("beneath, under it"), Verdict::Correct);
        assert_eq!(e.judge("below and left"), Verdict::NamesOtherCandidate);
    }

    #[test]
    fn numbers_other_than_the_answer_are_wrong_even_without_a_space() {
        let answers = s(&["5", "five"]);
        let e = Expected { answers: &answers, wrong: &[], space: None, instruction: None };
        assert_eq!(e.judge("There are five hexagons."), Verdict::Correct);
        assert_eq!(e.judge("5 (five)"), Verdict::Correct);
        assert_eq!(e.judge("4 5 6"), Verdict::NamesOtherCandidate);
        assert_eq!(e.judge("0 1 2 3 4 5 6 7 8 9 10"), Verdict::NamesOtherCandidate);
        let words = s(&["cat"]);
        let e = Expected { answers: &words, wrong: &[], space: None, instruction: None };
        assert_eq!(e.judge("2 cats and a cat"), Verdict::Correct, "numbers only matter for numeric answers");
    }

    #[test]
    fn the_format_comes_first() {
        let answers = s(&["5", "five"]);
        let e = Expected { answers: &answers, wrong: &[], space: None, instruction: Some(Instruction::Number) };
        assert_eq!(e.judge("five"), Verdict::Correct);
        assert_eq!(e.judge("There are 5."), Verdict::IgnoresFormat);
        let yes = s(&["yes"]);
        let no = s(&["no"]);
        let e = Expected { answers: &yes, wrong: &no, space: None, instruction: Some(Instruction::YesNo) };
        assert_eq!(e.judge("Yes."), Verdict::Correct);
        assert_eq!(e.judge("yes or no"), Verdict::IgnoresFormat);
        let e = Expected { answers: &yes, wrong: &no, space: None, instruction: None };
        assert_eq!(e.judge("yes or no"), Verdict::NamesWrongOption);
        assert!(!Verdict::IgnoresFormat.is_correct() && Verdict::Correct.is_correct());
    }
}
