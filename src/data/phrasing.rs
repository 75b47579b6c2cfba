//! Question phrasings and format instructions.
//!
//! Each class has a pool of phrasings seen in training and a separate pool that appears only in
//! the test split (`heldout`), and so do the format instructions ("answer in one word"). Together
//! they let an evaluation measure instruction following on wordings a variant never saw -- the
//! Lynx finding that diversified prompts improve instruction following. An image class also has
//! its paraphrases, the foundation text's further ways to ask it (english.rs): every way a class is
//! asked lives here.

use super::tasks::QuestionClass;

pub use crate::score::Instruction;

/// The format instructions of `instruction` in the training pool (`Seen`) or only in the test
/// split (`Heldout`).
pub fn instruction_texts(instruction: Instruction, phrasing: Phrasing) -> &'static [&'static str] {
    match (instruction, phrasing) {
        (Instruction::OneWord, Phrasing::Seen) => &["Answer with a single word.", "Use one word."],
        (Instruction::YesNo, Phrasing::Seen) => &["Answer with yes or no.", "Say yes or no."],
        (Instruction::Number, Phrasing::Seen) => &["Answer with a number.", "Give just the number."],
        (Instruction::OneWord, Phrasing::Heldout) => &["Answer in one word.", "Reply with just one word."],
        (Instruction::YesNo, Phrasing::Heldout) => &["Answer yes or no.", "Respond with only yes or no."],
        (Instruction::Number, Phrasing::Heldout) => &["Reply with a number.", "Respond with digits only."],
    }
}

/// Whether a phrasing comes from the training pool or the test-only pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phrasing {
    /// From the pool used in every split.
    Seen,
    /// From the pool used only in the test split.
    Heldout,
}

impl Phrasing {
    /// Stable name, as written in annotations.
    pub fn name(self) -> &'static str {
        match self {
            Phrasing::Seen => "seen",
            Phrasing::Heldout => "heldout",
        }
    }
}

/// Question templates of a class; `{slot}`s are filled from the task.
pub fn templates(class: QuestionClass, phrasing: Phrasing) -> &'static [&'static str] {
    use Phrasing::*;
    use QuestionClass::*;
    match (class, phrasing) {
        (Object, Seen) => &[
            "What shape is the {color} object?",
            "Which shape is colored {color}?",
            "What is the shape of the {color} thing?",
        ],
        (Object, Heldout) => {
            &["Can you tell me the shape of the {color} item?", "Name the shape of the object that is {color}."]
        }
        (Color, Seen) => {
            &["What color is the {shape}?", "Which color does the {shape} have?", "What is the color of the {shape}?"]
        }
        (Color, Heldout) => &["Tell me the colour of the {shape}.", "The {shape} is painted in which color?"],
        (Size, Seen) => &["Is the {a} big or small?", "What size is the {a}?", "How big is the {a}?"],
        (Size, Heldout) => &["Would you call the {a} small or big?", "Describe the size of the {a}."],
        (Counting, Seen) => {
            &["How many {shapes} are there?", "Count the {shapes} in the image.", "What is the number of {shapes}?"]
        }
        (Counting, Heldout) => &["How many {shapes} can you see?", "Tell me how many {shapes} the picture shows."],
        (Spatial, Seen) => &[
            "Where is the {a} relative to the {b}?",
            "Is the {a} left of, right of, above or below the {b}?",
            "In which direction from the {b} is the {a}?",
        ],
        (Spatial, Heldout) => {
            &["Relative to the {b}, where can the {a} be found?", "Where does the {a} sit compared with the {b}?"]
        }
        (Ocr, Seen) => {
            &["What word is written in the image?", "What does the label say?", "Read the text in the image."]
        }
        (Ocr, Heldout) => &["Which word appears on the sign?", "What text is printed on the label?"],
        (Compare, Seen) => &[
            "Which is bigger, the {a} or the {b}?",
            "Which one is larger: the {a} or the {b}?",
            "Is the {a} or the {b} bigger?",
        ],
        (Compare, Heldout) => &[
            "Of the {a} and the {b}, which is the larger one?",
            "Which object is greater in size, the {a} or the {b}?",
        ],
        (More, Seen) => &[
            "Are there more {xs} than {ys}?",
            "Does the image contain more {xs} than {ys}?",
            "Is the number of {xs} greater than the number of {ys}?",
        ],
        (More, Heldout) => &["Do the {xs} outnumber the {ys}?", "Compared with the {ys}, are there more {xs}?"],
        (Motion, Seen) => {
            &["Which way is the {a} moving?", "In which direction does the {a} move?", "Where is the {a} going?"]
        }
        (Motion, Heldout) => &["Tell me the direction the {a} travels in.", "Toward which side does the {a} move?"],
        (Order, Seen) => &[
            "Which appeared first, the {a} or the {b}?",
            "What showed up first: the {a} or the {b}?",
            "Did the {a} or the {b} appear first?",
        ],
        (Order, Heldout) => &[
            "Between the {a} and the {b}, which one came into view earlier?",
            "Which object was the first to appear, the {a} or the {b}?",
        ],
        (CountTime, Seen) => &[
            "How many objects appear during the video?",
            "How many different shapes show up in the clip?",
            "Count the objects that appear over time.",
        ],
        (CountTime, Heldout) => {
            &["In total, how many shapes flash up in this video?", "How many things appear one after another?"]
        }
    }
}

/// More ways to ask an image question, for the foundation text (`data text --foundation`,
/// english.rs): cores with the class's `{slot}`s, none of them a seen or held-out template
/// (english.rs's tests hold that).
pub fn paraphrases(class: QuestionClass) -> &'static [&'static str] {
    use QuestionClass::*;
    match class {
        Object => &[
            "Which shape has the color {color}?",
            "What kind of shape is the {color} one?",
            "The {color} object is which shape?",
            "What is the {color} shape?",
            "Which figure is {color}?",
            "What form does the {color} object take?",
            "Say which shape is {color}.",
            "What sort of shape is drawn in {color}?",
            "Of all the shapes, which one is {color}?",
        ],
        Color => &[
            "What colour is the {shape}?",
            "Which colour is the {shape}?",
            "In what color is the {shape} drawn?",
            "Name the color of the {shape}.",
            "The {shape} has which color?",
            "Say what color the {shape} is.",
            "What shade is the {shape}?",
            "How is the {shape} coloured?",
            "What is the colour of the {shape}?",
        ],
        Size => &[
            "Is the {a} large or small?",
            "Is the {a} a big one or a small one?",
            "How large is the {a}?",
            "What is the size of the {a}?",
            "Is the {a} small or large?",
            "Say whether the {a} is big or small.",
            "Which size is the {a}, big or small?",
        ],
        Counting => &[
            "How many {shapes} does the picture have?",
            "What number of {shapes} is there?",
            "Count how many {shapes} there are.",
            "How many {shapes} are in the picture?",
            "Give the count of {shapes}.",
            "How many {shapes} are drawn?",
            "What is the count of {shapes}?",
        ],
        Spatial => &[
            "Where is the {a} compared to the {b}?",
            "What is the position of the {a} relative to the {b}?",
            "Which side of the {b} is the {a} on?",
            "How is the {a} placed in relation to the {b}?",
            "Is the {a} to the left of, to the right of, above or below the {b}?",
            "Where can you find the {a}, seen from the {b}?",
            "Looking from the {b}, where is the {a}?",
        ],
        Ocr => &[
            "What is written on the label?",
            "What word does the picture show?",
            "Which word is on the label?",
            "What does the sign say?",
            "Read the word on the label.",
            "What text does the image contain?",
            "Which word is written there?",
        ],
        Compare => &[
            "Which one is bigger, the {a} or the {b}?",
            "Which is larger, the {a} or the {b}?",
            "Which of the two is bigger: the {a} or the {b}?",
            "The {a} or the {b}: which is the bigger one?",
            "Which takes up more space, the {a} or the {b}?",
            "Is the bigger one the {a} or the {b}?",
        ],
        More => &[
            "Is it true that there are more {xs} than {ys}?",
            "Does the picture have more {xs} than {ys}?",
            "Are the {xs} more numerous than the {ys}?",
            "Are there fewer {ys} than {xs}?",
            "Is the count of {xs} higher than the count of {ys}?",
            "Do the {xs} exceed the {ys} in number?",
        ],
        // Video classes: a caption describes a single picture, so no described task asks them.
        Motion | Order | CountTime => &[],
    }
}

/// Fills `{slot}`s of `template` from `slots`. An unknown slot is left as it is, which the tests
/// catch.
pub fn fill(template: &str, slots: &[(&'static str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in slots {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_disjoint_and_nonempty() {
        for class in QuestionClass::ALL {
            let seen = templates(class, Phrasing::Seen);
            let heldout = templates(class, Phrasing::Heldout);
            assert!(seen.len() >= 3 && heldout.len() >= 2, "{class:?}");
            assert!(seen.iter().all(|t| !heldout.contains(t)), "{class:?}");
        }
        for ins in Instruction::ALL {
            let (seen, heldout) = (instruction_texts(ins, Phrasing::Seen), instruction_texts(ins, Phrasing::Heldout));
            assert!(seen.iter().all(|t| !heldout.contains(t)));
        }
    }

    #[test]
    fn fill_replaces_every_slot() {
        let s = fill("Is the {a} left of the {b}?", &[("a", "red circle".into()), ("b", "blue square".into())]);
        assert_eq!(s, "Is the red circle left of the blue square?");
    }
}
