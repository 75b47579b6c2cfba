//! Instruction following: whether an answer has the format its question asked for ("answer in one
//! word", "answer yes or no", "reply with a number"), independent of whether it is right.
//! Lynx reports that diversified prompts improve instruction following; this is how we measure it.

use crate::data::Instruction;

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
    }
}
