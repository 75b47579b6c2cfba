//! Images and videos to pixel tensors, as CLIP and Lynx preprocess them.
//!
//! Decoding (PNG, JPEG, GIF, WebP) goes through `image`, with the EXIF orientation applied and
//! RGBA, grey and 16-bit images converted to 8-bit RGB (alpha dropped, as PIL's `convert("RGB")`).
//! A pixel-count limit is checked from the header before anything is decoded, so a small file that
//! claims to be 100k x 100k pixels (a decompression bomb) is refused without allocating.
//!
//! Then, per docs/contract.md and the exporter's `media.py`: resize the shorter side to `size`
//! (antialiased bicubic, [`resize`]), centre crop `size` x `size`, round to 8 bit, rescale by
//! `rescale`, normalise with the manifest's mean and std, and lay out NCHW:
//!
//! ```text
//! file -> decode -> orient -> RGB u8 (H, W, 3) -> f32 -> resize shorter side -> crop (S, S, 3)
//!      -> round, clamp 0..=255 -> * rescale -> (x - mean) / std -> (3, S, S)
//! ```
//!
//! A video is F frames sampled uniformly (frame i of F is index `floor((i + 0.5) * n / F)`) from a
//! folder of frame images (sorted by name) or an animated GIF, giving (F, 3, S, S); an image is a
//! video of one frame, (1, 3, S, S). Batches stack samples to (B, F, 3, S, S).

pub mod resize;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageReader, RgbImage};
use ndarray::{s, Array3, Array4, Array5, Axis};

use crate::error::{Error, Result};
use crate::manifest::{CropMode, PreprocessSpec, VideoSpec};

/// The default pixel limit per image: 40 megapixels (a 6000 x 6000 photo passes; a bomb does not).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// What a question is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    /// An image file.
    Image(PathBuf),
    /// A video: a folder of frame images or an animated GIF.
    Video(PathBuf),
    /// Already preprocessed pixels, (F, 3, S, S) (e.g. the exporter's goldens, or a cache).
    Pixels(Array4<f32>),
    /// Nothing (text only; what the blind control sees whatever it is given).
    None,
}

impl Media {
    /// An image file.
    pub fn image(path: impl Into<PathBuf>) -> Media {
        Media::Image(path.into())
    }

    /// A video folder or animated GIF.
    pub fn video(path: impl Into<PathBuf>) -> Media {
        Media::Video(path.into())
    }
}

/// Turns media into the pixel tensors a variant's vision encoder takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    spec: PreprocessSpec,
    frames: usize,
    max_pixels: u64,
}

impl Preprocessor {
    /// A preprocessor for a manifest's `preprocess` and `video` sections.
    pub fn new(spec: PreprocessSpec, video: VideoSpec) -> Preprocessor {
        Preprocessor { spec, frames: video.frames, max_pixels: DEFAULT_MAX_PIXELS }
    }

    /// Sets the per-image pixel limit.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Preprocessor {
        self.max_pixels = max_pixels;
        self
    }

    /// Output side.
    pub fn size(&self) -> usize {
        self.spec.size as usize
    }

    /// Frames per video sample.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Pixels for one sample: (F, 3, S, S), F = 1 for an image.
    pub fn pixels(&self, media: &Media) -> Result<Array4<f32>> {
        match media {
            Media::Image(path) => {
                let img = load_image(path, self.max_pixels)?;
                let chw = self.normalise(&img);
                Ok(chw.insert_axis(Axis(0)))
            }
            Media::Video(path) => {
                let frames = load_video(path, self.frames, self.max_pixels)?;
                let s = self.size();
                let mut out = Array4::<f32>::zeros((frames.len(), 3, s, s));
                for (i, f) in frames.iter().enumerate() {
                    out.slice_mut(s![i, .., .., ..]).assign(&self.normalise(f));
                }
                Ok(out)
            }
            Media::Pixels(px) => {
                let s = self.size();
                let (_, c, h, w) = px.dim();
                if (c, h, w) != (3, s, s) {
                    return Err(Error::InvalidArgument {
                        what: "pixel values",
                        value: format!("{:?}", px.shape()),
                        expected: format!("(frames, 3, {s}, {s})"),
                    });
                }
                Ok(px.clone())
            }
            Media::None => Err(Error::InvalidArgument {
                what: "media",
                value: "none".into(),
                expected: "an image or a video for a variant with vision input".into(),
            }),
        }
    }

    /// (H, W, 3) u8 -> (3, S, S) f32, resized, cropped, rounded, normalised.
    pub fn normalise(&self, img: &RgbImage) -> Array3<f32> {
        let size = self.size();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let src = Array3::from_shape_fn((h, w, 3), |(y, x, c)| f32::from(img.get_pixel(x as u32, y as u32)[c]));
        let (nh, nw) = match self.spec.crop {
            CropMode::None => (size, size),
            CropMode::Center => {
                // Python's round() (half to even), as the exporter computes the resized size.
                let scale = size as f64 / h.min(w) as f64;
                let nh = ((h as f64 * scale).round_ties_even() as usize).max(size);
                let nw = ((w as f64 * scale).round_ties_even() as usize).max(size);
                (nh, nw)
            }
        };
        let resized = if (h, w) == (size, size) { src } else { resize::resize(src.view(), nh, nw, self.spec.resize) };
        let (top, left) = ((nh.saturating_sub(size)) / 2, (nw.saturating_sub(size)) / 2);
        let crop = resized.slice(s![top..top + size, left..left + size, ..]);
        let mut out = Array3::<f32>::zeros((3, size, size));
        for c in 0..3 {
            let (mean, std) = (self.spec.mean[c], self.spec.std[c]);
            for y in 0..size {
                for x in 0..size {
                    let v = crop[[y, x, c]].round_ties_even().clamp(0.0, 255.0);
                    out[[c, y, x]] = (v * self.spec.rescale - mean) / std;
                }
            }
        }
        out
    }

    /// Stacks per-sample pixels (each (F, 3, S, S), the same F) into (B, F, 3, S, S).
    pub fn stack(samples: &[Array4<f32>]) -> Result<Array5<f32>> {
        let Some(first) = samples.first() else {
            return Err(Error::InvalidArgument {
                what: "batch",
                value: "0 items".into(),
                expected: "at least 1".into(),
            });
        };
        let dim = first.dim();
        let mut out = Array5::<f32>::zeros((samples.len(), dim.0, dim.1, dim.2, dim.3));
        for (i, px) in samples.iter().enumerate() {
            if px.dim() != dim {
                return Err(Error::InvalidArgument {
                    what: "batch",
                    value: format!("pixel shapes {:?} and {:?}", first.shape(), px.shape()),
                    expected: "samples with the same frame count (batch images and videos separately)".into(),
                });
            }
            out.slice_mut(s![i, .., .., .., ..]).assign(px);
        }
        Ok(out)
    }
}

/// Indices of `frames` frames sampled uniformly (segment centres) from `n`.
pub fn uniform_indices(n: usize, frames: usize) -> Vec<usize> {
    (0..frames).map(|i| (((2 * i + 1) * n) / (2 * frames)).min(n.saturating_sub(1))).collect()
}

fn image_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::image(path, format!("cannot decode it ({e}); expected a PNG, JPEG, GIF or WebP image"))
}

fn check_pixels(path: &Path, w: u32, h: u32, max_pixels: u64) -> Result<()> {
    let n = u64::from(w) * u64::from(h);
    if n > max_pixels {
        return Err(Error::image(
            path,
            format!("is {w} x {h} = {n} pixels, over the limit of {max_pixels} (a guard against decompression bombs); downscale it first"),
        ));
    }
    Ok(())
}

fn limits(max_pixels: u64) -> image::Limits {
    let mut l = image::Limits::default();
    // RGBA16 is the widest decoded form: 8 bytes per pixel, plus headroom for the decoder.
    l.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    l
}

/// Decodes an image file to 8-bit RGB with its EXIF orientation applied.
pub fn load_image(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let reader = ImageReader::open(path)
        .map_err(|e| Error::io("opening", path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io("reading", path, e))?;
    if reader.format().is_none() {
        return Err(Error::image(path, "is not an image this build reads; expected a PNG, JPEG, GIF or WebP image"));
    }
    let mut decoder = reader.into_decoder().map_err(|e| image_error(path, e))?;
    let (w, h) = decoder.dimensions();
    check_pixels(path, w, h, max_pixels)?;
    decoder.set_limits(limits(max_pixels)).map_err(|e| image_error(path, e))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, e))?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

/// Extensions of frame files in a video folder.
const FRAME_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// `frames` frames of a video folder or animated GIF, sampled uniformly.
pub fn load_video(path: &Path, frames: usize, max_pixels: u64) -> Result<Vec<RgbImage>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io("listing", path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| FRAME_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::image(path, "is a folder without frame images (png, jpg, webp, gif)"));
        }
        return uniform_indices(files.len(), frames).into_iter().map(|i| load_image(&files[i], max_pixels)).collect();
    }
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut decoder = image::codecs::gif::GifDecoder::new(BufReader::new(file))
        .map_err(|e| Error::image(path, format!("is neither a folder of frames nor an animated GIF ({e})")))?;
    let (w, h) = decoder.dimensions();
    check_pixels(path, w, h, max_pixels)?;
    decoder.set_limits(limits(max_pixels)).map_err(|e| image_error(path, e))?;
    let mut all = Vec::new();
    let mut total = 0u64;
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| image_error(path, e))?;
        total += u64::from(w) * u64::from(h);
        // Every composited frame is a full canvas: bound the sum too.
        if total > max_pixels.saturating_mul(4) {
            return Err(Error::image(
                path,
                format!("decodes to more than {} pixels in all; shorten the GIF", max_pixels * 4),
            ));
        }
        all.push(DynamicImage::ImageRgba8(frame.into_buffer()).to_rgb8());
    }
    if all.is_empty() {
        return Err(Error::image(path, "has no frames"));
    }
    let picked = uniform_indices(all.len(), frames);
    Ok(picked.into_iter().map(|i| all[i].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ResizeFilter;

    #[test]
    fn uniform_sampling_takes_segment_centres() {
        assert_eq!(uniform_indices(8, 5), vec![0, 2, 4, 5, 7]);
        assert_eq!(uniform_indices(3, 2), vec![0, 2]);
        assert_eq!(uniform_indices(1, 3), vec![0, 0, 0]);
        assert_eq!(uniform_indices(10, 1), vec![5]);
    }

    fn prep(size: u32) -> Preprocessor {
        Preprocessor::new(
            PreprocessSpec {
                size,
                resize: ResizeFilter::Bicubic,
                crop: CropMode::Center,
                rescale: 1.0 / 255.0,
                mean: [0.5, 0.5, 0.5],
                std: [0.5, 0.5, 0.5],
            },
            VideoSpec { frames: 2, sampling: crate::manifest::FrameSampling::Uniform },
        )
    }

    #[test]
    fn normalise_maps_0_and_255_to_minus_1_and_1() {
        let mut img = RgbImage::new(4, 4);
        img.put_pixel(0, 0, image::Rgb([255, 0, 255]));
        let out = prep(4).normalise(&img);
        assert_eq!(out.dim(), (3, 4, 4));
        assert!((out[[0, 0, 0]] - 1.0).abs() < 1e-6);
        assert!((out[[1, 0, 0]] + 1.0).abs() < 1e-6);
        assert!((out[[0, 1, 1]] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn centre_crop_keeps_the_middle_of_a_wide_image() {
        // 8 x 4: the shorter side is already 4, so no resize: columns 2..6 survive.
        let img = RgbImage::from_fn(8, 4, |x, _| image::Rgb([(x * 30) as u8, 0, 0]));
        let out = prep(4).normalise(&img);
        let col0 = (out[[0, 0, 0]] * 0.5 + 0.5) * 255.0;
        assert!((col0 - 60.0).abs() < 1e-3, "{col0}");
    }

    #[test]
    fn stack_rejects_mixed_frame_counts() {
        let a = Array4::<f32>::zeros((1, 3, 2, 2));
        let b = Array4::<f32>::zeros((2, 3, 2, 2));
        assert_eq!(Preprocessor::stack(&[a.clone(), a.clone()]).map(|x| x.dim()).ok(), Some((2, 1, 3, 2, 2)));
        assert!(Preprocessor::stack(&[a, b]).is_err());
    }
}
