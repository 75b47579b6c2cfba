//! The question classes and, for each, a seeded builder of one item: the scene (or the frames of
//! a clip), the slots its question templates need, the accepted answers and the target responses.
//!
//! Difficulty comes from [`Knobs`]: small objects and small text need resolution, many objects
//! need visual tokens, events spread over frames need frames, distractors punish shortcuts.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::phrasing::Instruction;
use super::render::label_plate;
use super::scene::{Color, Label, Layout, Object, Scene, Shape, Size};
use super::Knobs;
use crate::benchmark::classes::{RELATIONS, SIZES, WAYS, WORDS};

/// The classes a task can be of (the benchmark's, [`crate::benchmark::classes`]).
pub use crate::benchmark::{Modality, QuestionClass};

/// What a task shows.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskMedia {
    /// A still image.
    Image(Scene),
    /// The frames of a clip, in order.
    Video(Vec<Scene>),
}

/// One generated item before phrasing: the media, the slots for the question templates, the
/// answers and the responses to train on.
#[derive(Debug, Clone)]
pub struct Task {
    /// The question class.
    pub class: QuestionClass,
    /// Background colour of every frame.
    pub background: [u8; 3],
    /// The scene or frames.
    pub media: TaskMedia,
    /// Values for the `{slot}`s of the class's templates.
    pub slots: Vec<(&'static str, String)>,
    /// Accepted answers (the first is the canonical short answer).
    pub answers: Vec<String>,
    /// The other options the question offers or implies ("big" when the answer is "small"). An
    /// answer that contains one of them is wrong even if it also contains a right answer, so that
    /// echoing "small or big" scores nothing.
    pub wrong: Vec<String>,
    /// The full-sentence response used when the question carries no format instruction.
    pub sentence: String,
    /// A caption of the scene (for alignment pretraining); for a video, of its last frame.
    pub caption: String,
}

impl Task {
    /// The target to train on: the bare answer when the question carries a format instruction,
    /// else the full sentence.
    pub fn response(&self, instruction: Option<Instruction>) -> String {
        match instruction {
            Some(_) => self.answers[0].clone(),
            None => self.sentence.clone(),
        }
    }
}

const NUMBER_WORDS: [&str; 11] =
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];

fn number_answers(n: usize) -> Vec<String> {
    let mut v = vec![n.to_string()];
    if let Some(w) = NUMBER_WORDS.get(n) {
        v.push(w.to_string());
    }
    v
}

fn radius(rng: &mut ChaCha8Rng, knobs: &Knobs, size: Size) -> f32 {
    let (lo, hi) = match size {
        Size::Small => knobs.small_radius,
        Size::Big => knobs.big_radius,
    };
    rng.random_range(lo..=hi).round()
}

fn random_size(rng: &mut ChaCha8Rng) -> Size {
    if rng.random_bool(0.5) {
        Size::Big
    } else {
        Size::Small
    }
}

fn position_words(o: &Object, canvas: u32) -> &'static str {
    let third = canvas as f32 / 3.0;
    let col = (o.x / third).floor().clamp(0.0, 2.0) as usize;
    let row = (o.y / third).floor().clamp(0.0, 2.0) as usize;
    const GRID: [[&str; 3]; 3] = [
        ["at the top left", "at the top", "at the top right"],
        ["on the left", "in the middle", "on the right"],
        ["at the bottom left", "at the bottom", "at the bottom right"],
    ];
    GRID[row][col]
}

fn join_list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// Describes a scene: "a big red circle at the top left and a small blue square in the middle".
pub fn caption(scene: &Scene, canvas: u32) -> String {
    let mut parts: Vec<String> =
        scene.objects.iter().map(|o| format!("a {} {}", o.description(), position_words(o, canvas))).collect();
    for label in &scene.labels {
        parts.push(format!("a label that reads {}", label.text));
    }
    if parts.is_empty() {
        "an empty picture".into()
    } else {
        join_list(&parts)
    }
}

/// Builds objects one by one, retrying placement; gives up on an object that finds no room.
struct SceneBuilder<'r> {
    layout: Layout<'r>,
    objects: Vec<Object>,
}

impl<'r> SceneBuilder<'r> {
    fn add(&mut self, shape: Shape, color: Color, size: Size, radius: f32) -> bool {
        self.add_in(shape, color, size, radius, (0.0, 1.0, 0.0, 1.0))
    }

    fn add_in(&mut self, shape: Shape, color: Color, size: Size, radius: f32, area: (f32, f32, f32, f32)) -> bool {
        match self.layout.place_in(radius, area.0, area.1, area.2, area.3) {
            Some((x, y)) => {
                self.objects.push(Object { shape, color, size, x, y, radius });
                true
            }
            None => false,
        }
    }
}

impl SceneBuilder<'_> {
    fn layout_rng(&mut self) -> &mut ChaCha8Rng {
        self.layout.rng()
    }

    /// Adds one object per (shape, colour) pair, each of a random size; an object that finds no
    /// room is left out.
    fn add_pairs(&mut self, knobs: &Knobs, pairs: &[(Shape, Color)]) {
        for &(shape, color) in pairs {
            let size = random_size(self.layout_rng());
            let r = radius(self.layout_rng(), knobs, size);
            self.add(shape, color, size, r);
        }
    }

    /// The placed objects; ends the builder's borrow of the generator.
    fn finish(self) -> Vec<Object> {
        self.objects
    }
}

/// Builds one task of `class` from `rng`.
pub fn build(class: QuestionClass, rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let grey = rng.random_range(25..=75u8);
    let background = [grey, grey, grey.saturating_add(rng.random_range(0..=10))];
    let mut task = match class {
        QuestionClass::Object => object(rng, knobs),
        QuestionClass::Color => color(rng, knobs),
        QuestionClass::Size => size(rng, knobs),
        QuestionClass::Counting => counting(rng, knobs),
        QuestionClass::Spatial => spatial(rng, knobs),
        QuestionClass::Ocr => ocr(rng, knobs),
        QuestionClass::Compare => compare(rng, knobs),
        QuestionClass::More => more(rng, knobs),
        QuestionClass::Motion => motion(rng, knobs),
        QuestionClass::Order => order(rng, knobs),
        QuestionClass::CountTime => count_time(rng, knobs),
    };
    task.background = background;
    task.caption = match &task.media {
        TaskMedia::Image(scene) => caption(scene, knobs.canvas),
        TaskMedia::Video(frames) => frames.last().map(|f| caption(f, knobs.canvas)).unwrap_or_default(),
    };
    task
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Answers and wrong options of a question with a fixed set of options: `groups[answer]` are
/// the accepted words, every other group's words are wrong.
fn options(groups: &[&[&str]], answer: usize) -> (Vec<String>, Vec<String>) {
    let right = strings(groups[answer]);
    let wrong = groups.iter().enumerate().filter(|(i, _)| *i != answer).flat_map(|(_, g)| strings(g)).collect();
    (right, wrong)
}

fn task(
    class: QuestionClass,
    media: TaskMedia,
    slots: Vec<(&'static str, String)>,
    answers: Vec<String>,
    sentence: String,
) -> Task {
    Task { class, background: [0, 0, 0], media, slots, answers, wrong: Vec::new(), sentence, caption: String::new() }
}

/// Distinct (shape, colour) pairs, drawn without replacement over both.
fn distinct_pairs(rng: &mut ChaCha8Rng, n: usize) -> Vec<(Shape, Color)> {
    let mut shapes = Shape::ALL.to_vec();
    let mut colors = Color::ALL.to_vec();
    shapes.shuffle(rng);
    colors.shuffle(rng);
    shapes.into_iter().zip(colors).take(n).collect()
}

/// Adds up to `knobs.distractors` objects whose shape and colour both avoid `avoid`.
fn add_distractors(b: &mut SceneBuilder, knobs: &Knobs, avoid_shapes: &[Shape], avoid_colors: &[Color]) {
    let n = b.layout_rng().random_range(0..=knobs.distractors);
    let shapes: Vec<Shape> = Shape::ALL.into_iter().filter(|s| !avoid_shapes.contains(s)).collect();
    let colors: Vec<Color> = Color::ALL.into_iter().filter(|c| !avoid_colors.contains(c)).collect();
    for _ in 0..n {
        let rng = b.layout_rng();
        let (Some(&shape), Some(&color)) = (shapes.choose(rng), colors.choose(rng)) else { return };
        let size = random_size(rng);
        let r = radius(rng, knobs, size);
        b.add(shape, color, size, r);
    }
}

/// Two to five objects of distinct shapes and distinct colours, and one of them picked as the
/// question's target (so "the red object" and "the circle" each name exactly one object).
fn distinct_scene(rng: &mut ChaCha8Rng, knobs: &Knobs) -> (Scene, (Shape, Color)) {
    let n = rng.random_range(2..=knobs.max_objects.clamp(2, 5));
    let pairs = distinct_pairs(rng, n);
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    b.add_pairs(knobs, &pairs);
    let objects = b.finish();
    let (shape, color) = objects.choose(rng).map_or(pairs[0], |o| (o.shape, o.color));
    let scene = Scene { objects, labels: vec![] };
    (scene, (shape, color))
}

fn object(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let (scene, (shape, color)) = distinct_scene(rng, knobs);
    task(
        QuestionClass::Object,
        TaskMedia::Image(scene),
        vec![("color", color.name().into())],
        vec![shape.name().into()],
        format!("The {} object is a {}.", color.name(), shape.name()),
    )
}

fn color(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let (scene, (shape, color)) = distinct_scene(rng, knobs);
    task(
        QuestionClass::Color,
        TaskMedia::Image(scene),
        vec![("shape", shape.name().into())],
        vec![color.name().into()],
        format!("The {} is {}.", shape.name(), color.name()),
    )
}

fn size(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let n = rng.random_range(1..=knobs.max_objects.clamp(1, 4));
    let pairs = distinct_pairs(rng, n);
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    b.add_pairs(knobs, &pairs);
    let objects = b.finish();
    let target = objects.choose(rng).cloned();
    let scene = Scene { objects, labels: vec![] };
    let Some(t) = target else {
        // Unreachable with sane knobs (the first object always fits); fall back to a new draw.
        return size(rng, knobs);
    };
    let a = format!("{} {}", t.color.name(), t.shape.name());
    let (answers, wrong) = options(&SIZES, usize::from(t.size == Size::Small));
    let mut out = task(
        QuestionClass::Size,
        TaskMedia::Image(scene),
        vec![("a", a.clone())],
        answers,
        format!("The {a} is {}.", t.size.name()),
    );
    out.wrong = wrong;
    out
}

fn counting(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let target_shape = *Shape::ALL.choose(rng).unwrap_or(&Shape::Circle);
    let wanted = rng.random_range(1..=knobs.max_objects.max(1));
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    let mut count = 0;
    for _ in 0..wanted {
        let color = *Color::ALL.choose(b.layout_rng()).unwrap_or(&Color::Red);
        let size = if b.layout_rng().random_bool(0.7) { Size::Small } else { Size::Big };
        let r = radius(b.layout_rng(), knobs, size);
        if b.add(target_shape, color, size, r) {
            count += 1;
        }
    }
    add_distractors(&mut b, knobs, &[target_shape], &[]);
    let mut scene = Scene { objects: b.finish(), labels: vec![] };
    // Draw order should not give away which objects were the targets.
    scene.objects.shuffle(rng);
    let noun = if count == 1 { target_shape.name() } else { target_shape.plural() };
    let verb = if count == 1 { "is" } else { "are" };
    task(
        QuestionClass::Counting,
        TaskMedia::Image(scene),
        vec![("shapes", target_shape.plural().into())],
        number_answers(count),
        format!("There {verb} {count} {noun}."),
    )
}

fn spatial(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let pairs = distinct_pairs(rng, 2);
    let (a, b_) = (pairs[0], pairs[1]);
    // Which relation, then areas that make it unambiguous: separated along one axis by at least
    // a quarter of the canvas.
    let relation = rng.random_range(0..4);
    let (area_a, area_b) = match relation {
        0 => ((0.0, 0.4, 0.0, 1.0), (0.6, 1.0, 0.0, 1.0)), // a left of b
        1 => ((0.6, 1.0, 0.0, 1.0), (0.0, 0.4, 0.0, 1.0)), // a right of b
        2 => ((0.0, 1.0, 0.0, 0.4), (0.0, 1.0, 0.6, 1.0)), // a above b
        _ => ((0.0, 1.0, 0.6, 1.0), (0.0, 1.0, 0.0, 0.4)), // a below b
    };
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    let sa = random_size(b.layout_rng());
    let ra = radius(b.layout_rng(), knobs, sa);
    let sb = random_size(b.layout_rng());
    let rb = radius(b.layout_rng(), knobs, sb);
    b.add_in(a.0, a.1, sa, ra, area_a);
    b.add_in(b_.0, b_.1, sb, rb, area_b);
    add_distractors(&mut b, knobs, &[a.0, b_.0], &[a.1, b_.1]);
    let scene = Scene { objects: b.finish(), labels: vec![] };
    let (answers, wrong) = options(&RELATIONS, relation);
    let phrase = ["to the left of", "to the right of", "above", "below"][relation];
    let da = format!("{} {}", a.1.name(), a.0.name());
    let db = format!("{} {}", b_.1.name(), b_.0.name());
    let mut out = task(
        QuestionClass::Spatial,
        TaskMedia::Image(scene),
        vec![("a", da.clone()), ("b", db.clone())],
        answers,
        format!("The {da} is {phrase} the {db}."),
    );
    out.wrong = wrong;
    out
}

fn ocr(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let text: String = if rng.random_bool(0.7) {
        (*WORDS.choose(rng).unwrap_or(&"CAT")).to_string()
    } else {
        rng.random_range(10..1000u32).to_string()
    };
    let scale = knobs.text_scale;
    let (pw, ph) = label_plate(&text, scale);
    let canvas = knobs.canvas;
    let x = rng.random_range(0..=canvas.saturating_sub(pw));
    let y = rng.random_range(0..=canvas.saturating_sub(ph));
    let light = rng.random_bool(0.5);
    let (fg, bg) = if light { ([20, 20, 20], [235, 235, 225]) } else { ([240, 240, 240], [30, 30, 90]) };
    let mut b = SceneBuilder { layout: Layout::new(rng, canvas), objects: vec![] };
    b.layout.reserve_rect(x, y, pw, ph);
    add_distractors(&mut b, knobs, &[], &[]);
    let scene = Scene { objects: b.finish(), labels: vec![Label { text: text.clone(), x, y, scale, fg, bg }] };
    task(
        QuestionClass::Ocr,
        TaskMedia::Image(scene),
        vec![],
        vec![text.to_lowercase()],
        format!("The label says {text}."),
    )
}

fn compare(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let pairs = distinct_pairs(rng, 2);
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    // One big, one small, so "bigger" is unambiguous.
    let big_first = b.layout_rng().random_bool(0.5);
    let sizes = if big_first { [Size::Big, Size::Small] } else { [Size::Small, Size::Big] };
    for (&(shape, color), &size) in pairs.iter().zip(&sizes) {
        let r = radius(b.layout_rng(), knobs, size);
        b.add(shape, color, size, r);
    }
    add_distractors(&mut b, knobs, &[pairs[0].0, pairs[1].0], &[pairs[0].1, pairs[1].1]);
    let scene = Scene { objects: b.finish(), labels: vec![] };
    let (bigger, smaller) = if big_first { (pairs[0], pairs[1]) } else { (pairs[1], pairs[0]) };
    let da = format!("{} {}", pairs[0].1.name(), pairs[0].0.name());
    let db = format!("{} {}", pairs[1].1.name(), pairs[1].0.name());
    let mut out = task(
        QuestionClass::Compare,
        TaskMedia::Image(scene),
        vec![("a", da), ("b", db)],
        vec![bigger.0.name().into()],
        format!("The {} {} is bigger.", bigger.1.name(), bigger.0.name()),
    );
    out.wrong = vec![smaller.0.name().into()];
    out
}

fn more(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let mut shapes = Shape::ALL.to_vec();
    shapes.shuffle(rng);
    let (x, y) = (shapes[0], shapes[1]);
    let max = knobs.max_objects.clamp(2, 5);
    let mut nx = rng.random_range(1..=max);
    let mut ny = rng.random_range(1..=max);
    while nx == ny {
        nx = rng.random_range(1..=max);
        ny = rng.random_range(1..=max);
    }
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    let (mut cx, mut cy) = (0, 0);
    for (shape, n, placed) in [(x, nx, &mut cx), (y, ny, &mut cy)] {
        for _ in 0..n {
            let color = *Color::ALL.choose(b.layout_rng()).unwrap_or(&Color::Red);
            let r = radius(b.layout_rng(), knobs, Size::Small);
            if b.add(shape, color, Size::Small, r) {
                *placed += 1;
            }
        }
    }
    let mut scene = Scene { objects: b.finish(), labels: vec![] };
    scene.objects.shuffle(rng);
    let yes = cx > cy;
    let sentence = if yes {
        format!("Yes, there are more {} than {}.", x.plural(), y.plural())
    } else {
        format!("No, there are not more {} than {}.", x.plural(), y.plural())
    };
    let (answers, wrong) = options(&[&["yes"], &["no"]], usize::from(!yes));
    let mut out = task(
        QuestionClass::More,
        TaskMedia::Image(scene),
        vec![("xs", x.plural().into()), ("ys", y.plural().into())],
        answers,
        sentence,
    );
    out.wrong = wrong;
    out
}

fn motion(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let pairs = distinct_pairs(rng, 1 + knobs.distractors.min(3));
    let (shape, color) = pairs[0];
    let size = random_size(rng);
    let r = radius(rng, knobs, size);
    let canvas = knobs.canvas as f32;
    let dir = rng.random_range(0..4);
    // Travel about 60% of the canvas over the clip, starting near the opposite side.
    let span = 0.6 * canvas;
    let cross = rng.random_range((r + 2.0)..(canvas - r - 2.0)).round();
    let start = 0.2 * canvas;
    let (x0, y0, dx, dy) = match dir {
        0 => (start + span, cross, -span, 0.0), // left
        1 => (start, cross, span, 0.0),         // right
        2 => (cross, start + span, 0.0, -span), // up
        _ => (cross, start, 0.0, span),         // down
    };
    // Static distractors placed away from the path.
    let mut layout = Layout::new(rng, knobs.canvas);
    let steps = 8;
    for k in 0..=steps {
        let t = k as f32 / steps as f32;
        layout.reserve_rect(
            (x0 + dx * t - r).max(0.0) as u32,
            (y0 + dy * t - r).max(0.0) as u32,
            (2.0 * r) as u32,
            (2.0 * r) as u32,
        );
    }
    let mut statics = Vec::new();
    for &(s, c) in &pairs[1..] {
        let sz = random_size(layout.rng());
        let rr = radius(layout.rng(), knobs, sz);
        if let Some((x, y)) = layout.place(rr) {
            statics.push(Object { shape: s, color: c, size: sz, x, y, radius: rr });
        }
    }
    let frames: Vec<Scene> = (0..knobs.frames)
        .map(|f| {
            let t = if knobs.frames > 1 { f as f32 / (knobs.frames - 1) as f32 } else { 0.5 };
            let mut objects = statics.clone();
            objects.push(Object { shape, color, size, x: (x0 + dx * t).round(), y: (y0 + dy * t).round(), radius: r });
            Scene { objects, labels: vec![] }
        })
        .collect();
    let (answers, wrong) = options(&WAYS, dir);
    let word = WAYS[dir][0];
    let a = format!("{} {}", color.name(), shape.name());
    let mut out = task(
        QuestionClass::Motion,
        TaskMedia::Video(frames),
        vec![("a", a.clone())],
        answers,
        format!("The {a} is moving {word}."),
    );
    out.wrong = wrong;
    out
}

fn order(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let pairs = distinct_pairs(rng, 2);
    let frames_n = knobs.frames.max(2);
    // The first object appears at frame t1, the second at t2 > t1; both stay to the end, so a
    // single (last) frame shows both and cannot tell the order.
    let t1 = rng.random_range(0..frames_n - 1);
    let t2 = rng.random_range(t1 + 1..frames_n);
    let first_is_a = rng.random_bool(0.5);
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    b.add_pairs(knobs, &pairs);
    let objs = b.finish();
    let first_idx = if first_is_a { 0 } else { 1 };
    let frames: Vec<Scene> = (0..frames_n)
        .map(|f| {
            let objects = objs
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let appear = if *i == first_idx { t1 } else { t2 };
                    f >= appear
                })
                .map(|(_, o)| o.clone())
                .collect();
            Scene { objects, labels: vec![] }
        })
        .collect();
    let (first, second) = (pairs[first_idx], pairs[1 - first_idx]);
    let da = format!("{} {}", pairs[0].1.name(), pairs[0].0.name());
    let db = format!("{} {}", pairs[1].1.name(), pairs[1].0.name());
    let mut out = task(
        QuestionClass::Order,
        TaskMedia::Video(frames),
        vec![("a", da), ("b", db)],
        vec![first.0.name().into()],
        format!("The {} {} appeared first.", first.1.name(), first.0.name()),
    );
    out.wrong = vec![second.0.name().into()];
    out
}

fn count_time(rng: &mut ChaCha8Rng, knobs: &Knobs) -> Task {
    let frames_n = knobs.frames.max(2);
    let max = knobs.max_objects.clamp(2, 5).min(frames_n - 1);
    let n = rng.random_range(1..=max);
    let pairs = distinct_pairs(rng, n);
    // Each object is visible for two consecutive frames, at its own start; starts are distinct so
    // objects come one after another, and no single frame shows them all.
    let mut starts: Vec<usize> = (0..frames_n - 1).collect();
    starts.shuffle(rng);
    let mut starts: Vec<usize> = starts.into_iter().take(n).collect();
    starts.sort_unstable();
    let mut b = SceneBuilder { layout: Layout::new(rng, knobs.canvas), objects: vec![] };
    b.add_pairs(knobs, &pairs);
    let objs = b.finish();
    let count = objs.len();
    let frames: Vec<Scene> = (0..frames_n)
        .map(|f| {
            let objects =
                objs.iter().zip(&starts).filter(|(_, &s)| f == s || f == s + 1).map(|(o, _)| o.clone()).collect();
            Scene { objects, labels: vec![] }
        })
        .collect();
    let sentence = if count == 1 {
        "1 object appears in the video.".to_string()
    } else {
        format!("{count} objects appear in the video.")
    };
    task(QuestionClass::CountTime, TaskMedia::Video(frames), vec![], number_answers(count), sentence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::phrasing::{fill, templates, Phrasing};
    use rand::SeedableRng;

    #[test]
    fn every_class_builds_and_fills_its_templates() {
        let knobs = Knobs::default();
        let (mut echoes, mut echo_scores) = (0, Vec::new());
        for (i, class) in QuestionClass::ALL.into_iter().enumerate() {
            for seed in 0..20u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(seed * 31 + i as u64);
                let t = build(class, &mut rng, &knobs);
                assert!(!t.answers.is_empty());
                for p in [Phrasing::Seen, Phrasing::Heldout] {
                    for tpl in templates(class, p) {
                        let q = fill(tpl, &t.slots);
                        assert!(!q.contains('{'), "unfilled slot in {q:?} ({class:?})");
                    }
                }
                match (&t.media, class.modality()) {
                    (TaskMedia::Image(s), Modality::Image) => assert!(!s.objects.is_empty() || !s.labels.is_empty()),
                    (TaskMedia::Video(f), Modality::Video) => assert_eq!(f.len(), knobs.frames),
                    _ => panic!("{class:?} built the wrong modality"),
                }
                // The sentence and the bare answer (with the class's format instruction) are
                // scored correct; echoing the question's options, every question of the class
                // and every candidate of the class are not.
                let space = class.answer_space();
                let plain = crate::score::Expected {
                    answers: &t.answers,
                    wrong: &t.wrong,
                    space: Some(space),
                    instruction: None,
                };
                let instructed = crate::score::Expected { instruction: Some(class.instruction()), ..plain };
                assert!(plain.judge(&t.sentence).is_correct(), "{class:?}: {:?} vs {:?}", t.sentence, t.answers);
                assert!(instructed.judge(&t.answers[0]).is_correct(), "{class:?}: {:?}", t.answers[0]);
                if !t.wrong.is_empty() {
                    let echo = format!("{} or {}", t.answers[0], t.wrong[0]);
                    assert!(!plain.judge(&echo).is_correct(), "{echo}");
                }
                // An echoed question scores only where the template itself names the answer and
                // nothing else: "How big is the red circle?" when it is big, "How many things
                // appear one after another?" when one does. Counted below; the next rebuild of
                // the data should retire those two templates.
                for p in [Phrasing::Seen, Phrasing::Heldout] {
                    for tpl in templates(class, p) {
                        echoes += 1;
                        if plain.judge(&fill(tpl, &t.slots)).is_correct() {
                            echo_scores.push((class, *tpl));
                        }
                    }
                }
                let mut every = space.option_names().join(" ");
                if space.has_numbers() {
                    every.push_str(" 0 1 2 3 4 5 6 7 8 9 10 11");
                }
                assert!(!plain.judge(&every).is_correct(), "{class:?}: {every:?} scores");
            }
        }
        let leaky = [
            (QuestionClass::Size, "How big is the {a}?"),
            (QuestionClass::CountTime, "How many things appear one after another?"),
        ];
        assert!(echo_scores.iter().all(|e| leaky.contains(e)), "{echo_scores:?}");
        assert!(echo_scores.len() * 50 < echoes, "{} of {echoes} echoed questions score", echo_scores.len());
    }

    #[test]
    fn counting_answer_matches_the_scene() {
        let knobs = Knobs::default();
        for seed in 0..50u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let t = build(QuestionClass::Counting, &mut rng, &knobs);
            let TaskMedia::Image(scene) = &t.media else { panic!() };
            let shape_plural = &t.slots[0].1;
            let n = scene.objects.iter().filter(|o| o.shape.plural() == shape_plural).count();
            assert_eq!(t.answers[0], n.to_string());
        }
    }

    #[test]
    fn count_time_never_shows_every_object_in_one_frame() {
        let knobs = Knobs::default();
        for seed in 0..50u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let t = build(QuestionClass::CountTime, &mut rng, &knobs);
            let TaskMedia::Video(frames) = &t.media else { panic!() };
            let n: usize = t.answers[0].parse().unwrap_or(0);
            if n >= 3 {
                assert!(frames.iter().all(|f| f.objects.len() < n));
            }
        }
    }

    #[test]
    fn order_first_object_is_alone_at_first() {
        let knobs = Knobs::default();
        for seed in 0..30u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let t = build(QuestionClass::Order, &mut rng, &knobs);
            let TaskMedia::Video(frames) = &t.media else { panic!() };
            let first_seen = frames.iter().find(|f| !f.objects.is_empty()).map(|f| f.objects[0].shape.name());
            assert_eq!(first_seen, Some(t.answers[0].as_str()));
        }
    }
}
