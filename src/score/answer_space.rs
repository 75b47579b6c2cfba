//! The answer space of a question class: the closed set of candidates an answer can name
//! (colours, shapes, directions, yes/no, the OCR vocabulary, numbers), with synonyms grouped.
//!
//! The Open-VQA rule (an answer is right when it contains a reference answer) is open to a
//! degenerate answer that names every candidate ("red green blue ..." contains "blue"). With the
//! class's answer space the scorer ([`super::rule`]) finds every candidate an answer names and
//! counts the answer wrong when it names one that the references do not: hedging over the options
//! earns nothing. Synonyms of one candidate ("below", "under") count as one.

use std::collections::BTreeSet;

use super::normalize::{contains_tokens, normalize_tokens};

/// One candidate an answer can name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Candidate {
    /// The option group at this index of the space.
    Option(usize),
    /// A number, in normalised digits.
    Number(String),
}

/// The candidates of a question class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerSpace {
    /// Option groups; each group holds the normalised token runs of its synonyms.
    options: Vec<Vec<Vec<String>>>,
    /// Whether every number is a candidate too.
    numbers: bool,
}

/// Whether a normalised token is a number.
pub fn is_number(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

impl AnswerSpace {
    /// An empty space (names nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one candidate with its synonyms (`["below", "under", "beneath"]`).
    pub fn with_option<S: AsRef<str>>(mut self, synonyms: &[S]) -> Self {
        let group: Vec<Vec<String>> =
            synonyms.iter().map(|s| normalize_tokens(s.as_ref())).filter(|t| !t.is_empty()).collect();
        if !group.is_empty() {
            self.options.push(group);
        }
        self
    }

    /// Adds one candidate per word, each without synonyms.
    pub fn with_words<S: AsRef<str>>(self, words: &[S]) -> Self {
        words.iter().fold(self, |space, w| space.with_option(&[w.as_ref()]))
    }

    /// Makes every number a candidate.
    pub fn with_numbers(mut self) -> Self {
        self.numbers = true;
        self
    }

    /// Number of option groups (numbers not counted).
    pub fn options(&self) -> usize {
        self.options.len()
    }

    /// Whether numbers are candidates.
    pub fn has_numbers(&self) -> bool {
        self.numbers
    }

    /// The first synonym of every option group, as text (for tests and docs).
    pub fn option_names(&self) -> Vec<String> {
        self.options.iter().filter_map(|g| g.first().map(|t| t.join(" "))).collect()
    }

    /// The candidates that the normalised `tokens` name.
    pub fn named(&self, tokens: &[String]) -> BTreeSet<Candidate> {
        let mut out: BTreeSet<Candidate> = self
            .options
            .iter()
            .enumerate()
            .filter(|(_, group)| group.iter().any(|syn| contains_tokens(tokens, syn)))
            .map(|(i, _)| Candidate::Option(i))
            .collect();
        if self.numbers {
            out.extend(tokens.iter().filter(|t| is_number(t)).map(|t| Candidate::Number(t.clone())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        normalize_tokens(s)
    }

    #[test]
    fn synonyms_are_one_candidate_and_numbers_are_values() {
        let s =
            AnswerSpace::new().with_option(&["above", "over", "up"]).with_option(&["below", "under"]).with_numbers();
        assert_eq!(s.named(&toks("It is up above")), BTreeSet::from([Candidate::Option(0)]));
        assert_eq!(s.named(&toks("above or under")).len(), 2);
        assert_eq!(
            s.named(&toks("five or 5 or 05")),
            BTreeSet::from([Candidate::Number("5".into())]),
            "one number however it is written"
        );
        assert_eq!(s.named(&toks("overall")).len(), 0, "whole words only");
        assert_eq!(s.option_names(), vec!["above", "below"]);
        assert!(AnswerSpace::new().named(&toks("5 above")).is_empty());
    }
}
