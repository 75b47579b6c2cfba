//! Instruction following: whether an answer has the format its question asked for ("answer in one
//! word", "answer yes or no", "reply with a number"), independent of whether it is right.
//! Lynx reports that diversified prompts improve instruction following; this is how we measure it,
//! and the scorer ([`super::rule`]) counts an answer that ignores its question's format as wrong.

use serde::{Deserialize, Serialize};

/// The answer format a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Instruction {
    /// A single word.
    OneWord,
    /// "yes" or "no".
    YesNo,
    /// A number.
    Number,
}

impl Instruction {
    /// Every instruction.
    pub const ALL: [Instruction; 3] = [Instruction::OneWord, Instruction::YesNo, Instruction::Number];

    /// Stable name, as written in annotations.
    pub fn name(self) -> &'static str {
        match self {
            Instruction::OneWord => "one_word",
            Instruction::YesNo => "yes_no",
            Instruction::Number => "number",
        }
    }

    /// Parses [`Instruction::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// Whether `answer` follows `instruction`. Punctuation and case are ignored; articles count as
/// words ("the circle" is two words).
pub fn follows(instruction: Instruction, answer: &str) -> bool {
    let lowered = answer.to_lowercase();
    let words: Vec<&str> = lowered.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    match instruction {
        Instruction::OneWord => words.len() == 1,
        Instruction::YesNo => matches!(words.as_slice(), ["yes"] | ["no"]),
        Instruction::Number => match words.as_slice() {
            [w] => {
                let n = super::normalize(w);
                !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(follows(Instruction::OneWord, "Circle."));
        assert!(!follows(Instruction::OneWord, "the circle"));
        assert!(!follows(Instruction::OneWord, ""));
        assert!(follows(Instruction::YesNo, "Yes"));
        assert!(follows(Instruction::YesNo, "no."));
        assert!(!follows(Instruction::YesNo, "yes, there are"));
        assert!(!follows(Instruction::YesNo, "maybe"));
        assert!(follows(Instruction::Number, "3"));
        assert!(follows(Instruction::Number, "three"));
        assert!(!follows(Instruction::Number, "3 circles"));
        assert!(!follows(Instruction::Number, "circle"));
        assert!(!follows(Instruction::Number, "a"));
        for i in Instruction::ALL {
            assert_eq!(Instruction::from_name(i.name()), Some(i));
        }
    }
}
