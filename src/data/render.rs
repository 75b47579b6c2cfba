//! Draws a [`Scene`] into an RGB image: anti-aliased shapes (4x4 supersampling at edges) and
//! bitmap-font labels. Deterministic: the same scene gives the same pixels on every machine.

use image::{Rgb, RgbImage};

use super::font::{glyph, text_width, GLYPH_GAP, GLYPH_HEIGHT, GLYPH_WIDTH};
use super::scene::{Label, Object, Scene};

/// Renders `scene` on a `size` x `size` canvas filled with `background`.
pub fn render(scene: &Scene, size: u32, background: [u8; 3]) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, Rgb(background));
    for object in &scene.objects {
        draw_object(&mut img, object);
    }
    for label in &scene.labels {
        draw_label(&mut img, label);
    }
    img
}

fn blend(img: &mut RgbImage, x: u32, y: u32, color: [u8; 3], coverage: f32) {
    let p = img.get_pixel_mut(x, y);
    for (channel, &target) in p.0.iter_mut().zip(&color) {
        let v = *channel as f32 * (1.0 - coverage) + target as f32 * coverage;
        *channel = v.round().clamp(0.0, 255.0) as u8;
    }
}

fn draw_object(img: &mut RgbImage, o: &Object) {
    const SUB: u32 = 4;
    let (w, h) = img.dimensions();
    let x0 = (o.x - o.radius - 1.0).floor().max(0.0) as u32;
    let y0 = (o.y - o.radius - 1.0).floor().max(0.0) as u32;
    let x1 = ((o.x + o.radius + 1.0).ceil() as u32).min(w);
    let y1 = ((o.y + o.radius + 1.0).ceil() as u32).min(h);
    let color = o.color.rgb();
    for py in y0..y1 {
        for px in x0..x1 {
            let mut hits = 0;
            for sy in 0..SUB {
                for sx in 0..SUB {
                    let fx = px as f32 + (sx as f32 + 0.5) / SUB as f32;
                    let fy = py as f32 + (sy as f32 + 0.5) / SUB as f32;
                    if o.shape.contains((fx - o.x) / o.radius, (fy - o.y) / o.radius) {
                        hits += 1;
                    }
                }
            }
            if hits > 0 {
                blend(img, px, py, color, hits as f32 / (SUB * SUB) as f32);
            }
        }
    }
}

/// The plate drawn behind a label: (x, y, width, height) in pixels, one font pixel of padding.
pub fn label_plate(text: &str, scale: u32) -> (u32, u32) {
    (text_width(text, scale) + 2 * scale, GLYPH_HEIGHT * scale + 2 * scale)
}

fn draw_label(img: &mut RgbImage, label: &Label) {
    let (w, h) = img.dimensions();
    let (pw, ph) = label_plate(&label.text, label.scale);
    for y in label.y..(label.y + ph).min(h) {
        for x in label.x..(label.x + pw).min(w) {
            img.put_pixel(x, y, Rgb(label.bg));
        }
    }
    let s = label.scale;
    let mut cx = label.x + s;
    for ch in label.text.chars() {
        if let Some(rows) = glyph(ch) {
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..GLYPH_WIDTH {
                    if bits & (1 << (GLYPH_WIDTH - 1 - col)) != 0 {
                        for dy in 0..s {
                            for dx in 0..s {
                                let x = cx + col * s + dx;
                                let y = label.y + s + row as u32 * s + dy;
                                if x < w && y < h {
                                    img.put_pixel(x, y, Rgb(label.fg));
                                }
                            }
                        }
                    }
                }
            }
        }
        cx += (GLYPH_WIDTH + GLYPH_GAP) * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::scene::{Color, Shape, Size};

    #[test]
    fn a_shape_paints_its_colour_at_the_centre_and_leaves_corners() {
        let scene = Scene {
            objects: vec![Object {
                shape: Shape::Circle,
                color: Color::Red,
                size: Size::Big,
                x: 32.0,
                y: 32.0,
                radius: 10.0,
            }],
            labels: vec![],
        };
        let img = render(&scene, 64, [50, 50, 50]);
        assert_eq!(img.get_pixel(32, 32).0, Color::Red.rgb());
        assert_eq!(img.get_pixel(0, 0).0, [50, 50, 50]);
        assert_eq!(img.get_pixel(32, 45).0, [50, 50, 50]);
    }

    #[test]
    fn a_label_draws_glyph_pixels() {
        let label = Label { text: "I".into(), x: 0, y: 0, scale: 1, fg: [0, 0, 0], bg: [255, 255, 255] };
        let scene = Scene { objects: vec![], labels: vec![label] };
        let img = render(&scene, 16, [9, 9, 9]);
        // 'I' row 0 is 0x0E: columns 1..=3 set; the glyph starts one pixel in (padding).
        assert_eq!(img.get_pixel(1, 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(2, 1).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(3, 2).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(15, 15).0, [9, 9, 9]);
    }
}
