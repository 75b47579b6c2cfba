//! The question classes of the benchmark and what scoring needs of each: its modality, its
//! answer space (the candidates an answer can name) and the format instruction that fits it.
//!
//! The words here are the benchmark's vocabulary: the generator (`data`) draws its
//! scenes' shape and colour names and its answers from them, and the scorer reads the same tables,
//! so a record can be scored without the generator.

use std::sync::OnceLock;

use crate::score::{AnswerSpace, Instruction};

/// The shape nouns, (singular, plural), in the order of the generator's shapes
/// (`data::scene::Shape::ALL`).
pub const SHAPE_WORDS: [(&str, &str); 5] = [
    ("circle", "circles"),
    ("square", "squares"),
    ("triangle", "triangles"),
    ("diamond", "diamonds"),
    ("hexagon", "hexagons"),
];

/// The colour words, in the order of the generator's colours (`data::scene::Color::ALL`).
pub const COLOR_WORDS: [&str; 7] = ["red", "green", "blue", "yellow", "purple", "orange", "white"];

/// The question classes of the benchmark: eight about images, three about videos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuestionClass {
    /// The shape of the object of a given colour.
    Object,
    /// The colour of the object of a given shape.
    Color,
    /// Whether an object is big or small.
    Size,
    /// How many objects of a shape (among distractors).
    Counting,
    /// Left/right/above/below of two objects.
    Spatial,
    /// The word or number rendered on a label.
    Ocr,
    /// Which of two objects is bigger.
    Compare,
    /// Whether there are more of one shape than of another.
    More,
    /// The direction an object moves in a clip.
    Motion,
    /// Which of two objects appeared first in a clip.
    Order,
    /// How many objects appear, each for a short time, over a clip.
    CountTime,
}

/// Image or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modality {
    /// One still image.
    Image,
    /// A clip of frames.
    Video,
}

impl Modality {
    /// Stable name, as written in annotations.
    pub fn name(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Video => "video",
        }
    }
}

impl QuestionClass {
    /// Every class, in the order they are declared (images first, then videos, then any class added
    /// since). A new class goes last, here and in the enum: generated item `i` is of class
    /// `ALL[i % ALL.len()]` (`data::generate::class_of`), so a class put earlier changes the class of
    /// the committed test split's items and stales every golden that reads one of them.
    pub const ALL: [QuestionClass; 11] = [
        QuestionClass::Object,
        QuestionClass::Color,
        QuestionClass::Size,
        QuestionClass::Counting,
        QuestionClass::Spatial,
        QuestionClass::Ocr,
        QuestionClass::Compare,
        QuestionClass::More,
        QuestionClass::Motion,
        QuestionClass::Order,
        QuestionClass::CountTime,
    ];

    /// Stable name, as written in the `class` key of annotations.
    pub fn name(self) -> &'static str {
        match self {
            QuestionClass::Object => "object",
            QuestionClass::Color => "color",
            QuestionClass::Size => "size",
            QuestionClass::Counting => "counting",
            QuestionClass::Spatial => "spatial",
            QuestionClass::Ocr => "ocr",
            QuestionClass::Compare => "compare",
            QuestionClass::More => "more",
            QuestionClass::Motion => "motion",
            QuestionClass::Order => "order",
            QuestionClass::CountTime => "count_time",
        }
    }

    /// Parses [`QuestionClass::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the class asks about an image or a video.
    pub fn modality(self) -> Modality {
        match self {
            QuestionClass::Motion | QuestionClass::Order | QuestionClass::CountTime => Modality::Video,
            _ => Modality::Image,
        }
    }

    /// The candidates an answer to this class can name (docs/benchmark.md, "Scoring"): naming one
    /// that the accepted answers do not makes an answer wrong.
    pub fn answer_space(self) -> &'static AnswerSpace {
        static SPACES: OnceLock<Vec<AnswerSpace>> = OnceLock::new();
        let spaces = SPACES.get_or_init(|| QuestionClass::ALL.iter().map(|c| c.build_answer_space()).collect());
        &spaces[self as usize]
    }

    fn build_answer_space(self) -> AnswerSpace {
        let shapes = || SHAPE_WORDS.iter().fold(AnswerSpace::new(), |s, &(one, many)| s.with_option(&[one, many]));
        let groups = |gs: &[&[&str]]| gs.iter().fold(AnswerSpace::new(), |s, g| s.with_option(g));
        match self {
            QuestionClass::Object | QuestionClass::Compare | QuestionClass::Order => shapes(),
            QuestionClass::Color => AnswerSpace::new().with_words(&COLOR_WORDS),
            QuestionClass::Size => groups(&SIZES),
            QuestionClass::Counting | QuestionClass::CountTime => AnswerSpace::new().with_numbers(),
            QuestionClass::Spatial => groups(&RELATIONS),
            QuestionClass::Ocr => AnswerSpace::new().with_words(WORDS).with_numbers(),
            QuestionClass::More => groups(&[&["yes"], &["no"]]),
            QuestionClass::Motion => groups(&WAYS),
        }
    }

    /// The answer format that fits this class, used when a question carries an instruction.
    pub fn instruction(self) -> Instruction {
        match self {
            QuestionClass::Counting | QuestionClass::CountTime => Instruction::Number,
            QuestionClass::More => Instruction::YesNo,
            _ => Instruction::OneWord,
        }
    }
}

/// Words for the OCR class: short, no colour, shape, size or direction words (those are answers
/// of other classes).
pub const WORDS: &[&str] = &[
    "CAT", "DOG", "SUN", "MAP", "BOX", "KEY", "CUP", "HAT", "BUS", "PEN", "TOY", "FOX", "OWL", "BEE", "EGG", "JAR",
    "LOG", "NET", "OAK", "PIG", "RUG", "SKY", "TEA", "VAN", "BIRD", "FISH", "LAMP", "MOON", "STAR", "TREE", "BOAT",
    "CAKE", "DOOR", "FROG", "KITE", "LION", "ROSE", "SHIP", "WOLF", "MILK", "BOOK", "RAIN", "SNOW", "GOLD", "FARM",
];

/// Answers of the size class: big (and synonyms), small.
pub const SIZES: [&[&str]; 2] = [&["big", "large"], &["small", "little"]];

/// Answers of the spatial class: the relation of the first object to the second.
pub const RELATIONS: [&[&str]; 4] =
    [&["left"], &["right"], &["above", "over", "up"], &["below", "under", "beneath", "down"]];

/// Answers of the motion class: the direction of travel.
pub const WAYS: [&[&str]; 4] = [
    &["left", "leftward", "leftwards"],
    &["right", "rightward", "rightwards"],
    &["up", "upward", "upwards"],
    &["down", "downward", "downwards"],
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_class_in_declaration_order() {
        // `answer_space` indexes its table, built in `ALL` order, by the declaration order.
        for (i, class) in QuestionClass::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, i, "{class:?} is declared elsewhere than its place in ALL");
            assert_eq!(QuestionClass::from_name(class.name()), Some(class));
        }
    }
}
