//! Answer normalisation and the Open-VQA correctness rule.
//!
//! Normalisation (after VQA-style scorers): lower case; punctuation to spaces; articles (`a`,
//! `an`, `the`) dropped; number words to digits (`two` -> `2`, `twenty one` -> `21`); whitespace
//! collapsed. A prediction is correct when, normalised, it equals a normalised reference answer
//! or contains it as whole words: `"a red circle"` answers `"red"`, but `"leftover"` does not
//! answer `"left"`.

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

fn unit_value(word: &str) -> Option<u32> {
    UNITS.iter().position(|&w| w == word).map(|i| i as u32)
}

fn tens_value(word: &str) -> Option<u32> {
    TENS.iter().position(|&w| w == word).map(|i| 20 + 10 * i as u32)
}

/// A number written in words below 100 at `words[i..]`: `"seven"`, `"forty"`, `"forty two"`.
/// Returns the value and the words it took.
fn below_hundred(words: &[&str], i: usize) -> Option<(u32, usize)> {
    let w = *words.get(i)?;
    if let Some(t) = tens_value(w) {
        return match words.get(i + 1).and_then(|n| unit_value(n)) {
            Some(u) if (1..10).contains(&u) => Some((t + u, 2)),
            _ => Some((t, 1)),
        };
    }
    unit_value(w).map(|u| (u, 1))
}

/// A number written in words below 1000 at `words[i..]`: also `"three hundred"`,
/// `"three hundred forty two"`, `"hundred and five"`.
fn number_words(words: &[&str], i: usize) -> Option<(u32, usize)> {
    let (hundreds, used) = match (below_hundred(words, i), words.get(i).copied()) {
        (Some((v, n)), _) if (1..10).contains(&v) && words.get(i + n) == Some(&"hundred") => (v * 100, n + 1),
        (_, Some("hundred")) => (100, 1),
        (small, _) => return small,
    };
    let rest = i + used;
    if let Some((v, n)) = below_hundred(words, rest) {
        return Some((hundreds + v, used + n));
    }
    if words.get(rest) == Some(&"and") {
        if let Some((v, n)) = below_hundred(words, rest + 1) {
            return Some((hundreds + v, used + 1 + n));
        }
    }
    Some((hundreds, used))
}

/// The normalised tokens of `text`: lower case, punctuation to spaces, articles dropped, numbers
/// as digits without leading zeros (`"Forty-two"` and `"042"` -> `"42"`).
pub fn normalize_tokens(text: &str) -> Vec<String> {
    let lowered: String =
        text.chars().map(|c| if c.is_alphanumeric() { c.to_lowercase().next().unwrap_or(c) } else { ' ' }).collect();
    let words: Vec<&str> = lowered.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if let Some((value, used)) = number_words(&words, i) {
            out.push(value.to_string());
            i += used;
            continue;
        }
        let w = words[i];
        if w.len() > 1 && w.bytes().all(|b| b.is_ascii_digit()) {
            let trimmed = w.trim_start_matches('0');
            out.push(if trimmed.is_empty() { "0".to_string() } else { trimmed.to_string() });
        } else {
            out.push(w.to_string());
        }
        i += 1;
    }
    out
}

/// `text` normalised and joined by single spaces.
pub fn normalize(text: &str) -> String {
    normalize_tokens(text).join(" ")
}

/// Whether `needle` occurs in `haystack` as a contiguous run of whole tokens.
pub(crate) fn contains_tokens(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Open-VQA rule: correct when the normalised prediction equals a normalised reference or
/// contains one as whole words. References that normalise to nothing are ignored.
pub fn is_correct(prediction: &str, references: &[String]) -> bool {
    let pred = normalize_tokens(prediction);
    references.iter().any(|r| {
        let r = normalize_tokens(r);
        !r.is_empty() && (pred == r || contains_tokens(&pred, &r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalises_case_punctuation_articles_numbers_whitespace() {
        assert_eq!(normalize("  The  RED, circle!! "), "red circle");
        assert_eq!(normalize("There are two circles."), "there are 2 circles");
        assert_eq!(normalize("twenty one"), "21");
        assert_eq!(normalize("Twenty-one apples"), "21 apples");
        assert_eq!(normalize("thirty"), "30");
        assert_eq!(normalize("an apple a day"), "apple day");
        assert_eq!(normalize("It's 3"), "it s 3");
        assert_eq!(normalize("three hundred forty-two"), "342");
        assert_eq!(normalize("one hundred and five"), "105");
        assert_eq!(normalize("a hundred"), "100");
        assert_eq!(normalize("two hundred cats"), "200 cats");
        assert_eq!(normalize("007 and 0 and 00"), "7 and 0 and 0");
        assert_eq!(normalize("hundreds"), "hundreds");
    }

    #[test]
    fn digits_and_number_words_match_both_ways() {
        assert!(is_correct("2", &refs(&["two"])));
        assert!(is_correct("two", &refs(&["2"])));
        assert!(is_correct("There are Two circles.", &refs(&["2"])));
        assert!(!is_correct("12", &refs(&["2"])));
        assert!(!is_correct("twenty", &refs(&["2"])));
    }

    #[test]
    fn containment_is_by_whole_words() {
        assert!(is_correct("a red circle", &refs(&["red"])));
        assert!(!is_correct("red", &refs(&["a red circle"])));
        assert!(is_correct("red", &refs(&["a red"])));
        assert!(!is_correct("leftover", &refs(&["left"])));
        assert!(is_correct("to the left of it", &refs(&["left"])));
        assert!(!is_correct("reddish", &refs(&["red"])));
        assert!(is_correct("The label says CAT.", &refs(&["cat"])));
        assert!(!is_correct("blue circle", &refs(&["red circle"])));
        assert!(is_correct("a big red circle", &refs(&["red circle"])));
    }

    #[test]
    fn any_reference_may_match_and_empty_ones_never_do() {
        assert!(is_correct("under it", &refs(&["below", "under"])));
        assert!(!is_correct("the", &refs(&["the"])));
        assert!(!is_correct("", &refs(&["x"])));
        assert!(!is_correct("anything", &refs(&[])));
    }
}
