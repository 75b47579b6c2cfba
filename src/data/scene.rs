//! The objects a synthetic image or video frame is made of, and seeded layout of them.
//!
//! A scene is a list of coloured shapes and text labels on a plain background; the generator
//! draws it with [`super::render`]. All coordinates are in pixels of the square canvas.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::benchmark::classes::{COLOR_WORDS, SHAPE_WORDS};

/// The shapes the benchmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A disc.
    Circle,
    /// An axis-aligned square.
    Square,
    /// An upward equilateral triangle.
    Triangle,
    /// A square standing on a corner.
    Diamond,
    /// A regular hexagon.
    Hexagon,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 5] = [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond, Shape::Hexagon];

    /// The English noun: the benchmark's word ([`SHAPE_WORDS`], in the order of [`Shape::ALL`]).
    pub fn name(self) -> &'static str {
        SHAPE_WORDS[self as usize].0
    }

    /// The English plural.
    pub fn plural(self) -> &'static str {
        SHAPE_WORDS[self as usize].1
    }

    /// Whether the point at offset (dx, dy) from the centre, in units of the radius, is inside.
    pub fn contains(self, dx: f32, dy: f32) -> bool {
        let (ax, ay) = (dx.abs(), dy.abs());
        match self {
            Shape::Circle => dx * dx + dy * dy <= 1.0,
            Shape::Square => ax <= 0.82 && ay <= 0.82,
            Shape::Diamond => ax + ay <= 1.0,
            Shape::Hexagon => ay <= 0.866 && 0.866 * ax + 0.5 * ay <= 0.866,
            Shape::Triangle => {
                // Vertices (0, -1), (0.866, 0.5), (-0.866, 0.5): inside when below the two upper
                // edges and above the base.
                dy <= 0.5 && dy >= -1.0 + 1.732 * ax
            }
        }
    }
}

/// The colours the benchmark uses, chosen to stay distinct after downscaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// (220, 40, 40)
    Red,
    /// (40, 180, 60)
    Green,
    /// (50, 90, 230)
    Blue,
    /// (240, 220, 40)
    Yellow,
    /// (150, 60, 200)
    Purple,
    /// (245, 140, 20)
    Orange,
    /// (240, 240, 240)
    White,
}

impl Color {
    /// Every colour.
    pub const ALL: [Color; 7] =
        [Color::Red, Color::Green, Color::Blue, Color::Yellow, Color::Purple, Color::Orange, Color::White];

    /// The English word: the benchmark's ([`COLOR_WORDS`], in the order of [`Color::ALL`]).
    pub fn name(self) -> &'static str {
        COLOR_WORDS[self as usize]
    }

    /// sRGB value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [220, 40, 40],
            Color::Green => [40, 180, 60],
            Color::Blue => [50, 90, 230],
            Color::Yellow => [240, 220, 40],
            Color::Purple => [150, 60, 200],
            Color::Orange => [245, 140, 20],
            Color::White => [240, 240, 240],
        }
    }
}

/// Big or small: two well separated radius ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// Radius in [`Knobs::small_radius`](super::Knobs::small_radius).
    Small,
    /// Radius in [`Knobs::big_radius`](super::Knobs::big_radius).
    Big,
}

impl Size {
    /// The English adjective.
    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Big => "big",
        }
    }
}

/// One shape on the canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub color: Color,
    /// Its size class.
    pub size: Size,
    /// Centre x in pixels.
    pub x: f32,
    /// Centre y in pixels.
    pub y: f32,
    /// Radius in pixels.
    pub radius: f32,
}

impl Object {
    /// "big red circle".
    pub fn description(&self) -> String {
        format!("{} {} {}", self.size.name(), self.color.name(), self.shape.name())
    }
}

/// Text on a filled plate, for OCR questions.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The text (letters and digits).
    pub text: String,
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
    /// Font pixel size in image pixels.
    pub scale: u32,
    /// Text colour.
    pub fg: [u8; 3],
    /// Plate colour.
    pub bg: [u8; 3],
}

/// What one image (or one video frame) shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scene {
    /// Shapes, drawn in order.
    pub objects: Vec<Object>,
    /// Labels, drawn after the shapes.
    pub labels: Vec<Label>,
}

/// Places objects on a canvas without overlap.
pub struct Layout<'a> {
    rng: &'a mut ChaCha8Rng,
    canvas: f32,
    placed: Vec<(f32, f32, f32)>,
}

impl<'a> Layout<'a> {
    /// An empty canvas of `canvas` x `canvas` pixels.
    pub fn new(rng: &'a mut ChaCha8Rng, canvas: u32) -> Self {
        Self { rng, canvas: canvas as f32, placed: Vec::new() }
    }

    /// The generator behind this layout, for drawing attributes between placements.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Marks a rectangle (a label's plate) as occupied.
    pub fn reserve_rect(&mut self, x: u32, y: u32, w: u32, h: u32) {
        let r = (w.max(h) as f32) / 2.0 + 1.0;
        self.placed.push((x as f32 + w as f32 / 2.0, y as f32 + h as f32 / 2.0, r));
    }

    /// A free centre for a shape of `radius`, inside the box `[x0, x1] x [y0, y1]` given as
    /// fractions of the canvas; `None` when 200 tries found no room.
    pub fn place_in(&mut self, radius: f32, x0: f32, x1: f32, y0: f32, y1: f32) -> Option<(f32, f32)> {
        let margin = radius + 2.0;
        let lo_x = (x0 * self.canvas).max(margin);
        let hi_x = (x1 * self.canvas).min(self.canvas - margin);
        let lo_y = (y0 * self.canvas).max(margin);
        let hi_y = (y1 * self.canvas).min(self.canvas - margin);
        if lo_x >= hi_x || lo_y >= hi_y {
            return None;
        }
        for _ in 0..200 {
            let x = self.rng.random_range(lo_x..hi_x).round();
            let y = self.rng.random_range(lo_y..hi_y).round();
            let free = self
                .placed
                .iter()
                .all(|&(px, py, pr)| ((px - x).powi(2) + (py - y).powi(2)).sqrt() > pr + radius + 3.0);
            if free {
                self.placed.push((x, y, radius));
                return Some((x, y));
            }
        }
        None
    }

    /// A free centre anywhere on the canvas.
    pub fn place(&mut self, radius: f32) -> Option<(f32, f32)> {
        self.place_in(radius, 0.0, 1.0, 0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shapes_contain_their_centre_and_not_far_points() {
        for shape in Shape::ALL {
            assert!(shape.contains(0.0, 0.0), "{shape:?}");
            assert!(!shape.contains(1.1, 0.0), "{shape:?}");
            assert!(!shape.contains(0.0, 1.1), "{shape:?}");
        }
        // The triangle points up: its apex is at the top (negative y), its base at the bottom.
        assert!(Shape::Triangle.contains(0.0, -0.9));
        assert!(Shape::Triangle.contains(0.7, 0.45));
        assert!(!Shape::Triangle.contains(0.7, -0.45));
    }

    #[test]
    fn names_follow_the_benchmark_vocabulary_in_order() {
        for (i, shape) in Shape::ALL.into_iter().enumerate() {
            assert_eq!(shape as usize, i);
            assert_eq!((shape.name(), shape.plural()), SHAPE_WORDS[i]);
        }
        for (i, color) in Color::ALL.into_iter().enumerate() {
            assert_eq!((color as usize, color.name()), (i, COLOR_WORDS[i]));
        }
        assert_eq!(Shape::Hexagon.plural(), "hexagons");
        assert_eq!(Color::White.name(), "white");
    }

    #[test]
    fn layout_never_overlaps() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut layout = Layout::new(&mut rng, 128);
        let mut centres = Vec::new();
        while let Some(c) = layout.place(10.0) {
            centres.push(c);
            if centres.len() > 30 {
                break;
            }
        }
        assert!(centres.len() >= 8, "only {} objects fit", centres.len());
        for (i, a) in centres.iter().enumerate() {
            for b in &centres[i + 1..] {
                assert!(((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() > 20.0);
            }
        }
    }
}
