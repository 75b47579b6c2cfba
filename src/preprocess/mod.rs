//! Images and videos to pixel tensors, as CLIP and Lynx preprocess them.
//!
//! Decoding (PNG, JPEG, GIF, WebP) goes through `image`, with the EXIF orientation applied and
//! RGBA, grey and 16-bit images converted to 8-bit RGB (alpha dropped, as PIL's `convert("RGB")`).
//!
//! Media are untrusted input, so before anything is decoded:
//! - a media path must be a regular file (or, for a video, a folder of them) of at most
//!   [`MAX_MEDIA_BYTES`]: a FIFO, a device or `/dev/zero` is refused, never read;
//! - the decoded pixels of one sample are bounded by one budget (`max_pixels`, default
//!   [`DEFAULT_MAX_PIXELS`]), read from the headers: an image's size; a frame folder's sampled
//!   frames together; an animated GIF's canvas times its frame count (every frame is composited
//!   onto a full canvas, so a 131-byte GIF of four 6000 x 6000 frames would decode to 144
//!   megapixels), counted by walking the GIF's blocks without decoding them.
//!
//! So a small file that claims to be 100k x 100k pixels (a decompression bomb) is refused without
//! allocating.
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
//!
//! # The blank picture
//!
//! The matched blind control (`axes.vision_input: blank`) sees [`blank_picture`] in place of every
//! image and video frame: an RGB picture whose every pixel is [`VisionInput::BLANK_RGB`] (white,
//! the benchmark pictures' background), `size` x `size` at the variant's preprocess size. Its pixels
//! ([`Preprocessor::blank`]) come from the same [`Preprocessor::normalise`] as any picture's, so
//! they equal the pixels of a white image file. The exporter, which trains the control, reads the
//! colour from the generated manifest schema (`x-blank-rgb`). Where the model swaps it in:
//! `crate::model` (`Model::pixels`).

pub mod resize;

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use ndarray::{s, Array3, Array4, Array5, ArrayView3, ArrayView4, Axis};

use crate::error::{Error, Result};
use crate::manifest::{CropMode, PreprocessSpec, SizeRounding, VideoSpec, VisionInput};

/// The default budget of decoded pixels per sample: 40 megapixels (a 6000 x 6000 photo passes, so
/// do 130 frames of 640 x 480; a bomb does not).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// The largest media file read: 256 MiB (an uncompressed 40-megapixel RGB picture is 120 MB).
pub const MAX_MEDIA_BYTES: u64 = 256 << 20;

/// The blank picture at side `size`: every pixel [`VisionInput::BLANK_RGB`] (white). What the
/// matched blind control (`vision_input: blank`) sees in place of each image and video frame.
pub fn blank_picture(size: u32) -> RgbImage {
    RgbImage::from_pixel(size, size, image::Rgb(VisionInput::BLANK_RGB))
}

/// What a question is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Media {
    /// An image file.
    Image(PathBuf),
    /// A video: a folder of frame images or an animated GIF.
    Video(PathBuf),
    /// Already preprocessed pixels, (F, 3, S, S) (e.g. the exporter's goldens, or a cache).
    Pixels(Array4<f32>),
    /// Nothing (text only; what a variant without vision, `vision_input: none`, sees whatever it is
    /// given).
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

/// `v` rounded half to even, then clamped to 0..=255, as PyTorch's `round().clamp(0, 255)` of a
/// resized picture: `round_ties_even` without the library call it compiles to on baseline x86-64
/// (adding 2^23 to a float in [0, 255] leaves a unit in the last place of 1, so the addition itself
/// rounds, half to even; clamping first changes no result, and NaN stays NaN).
#[inline]
fn round_byte(v: f32) -> f32 {
    const SHIFT: f32 = 8_388_608.0; // 2^23
    (v.clamp(0.0, 255.0) + SHIFT) - SHIFT
}

impl Preprocessor {
    /// A preprocessor for a manifest's `preprocess` and `video` sections.
    pub fn new(spec: PreprocessSpec, video: VideoSpec) -> Preprocessor {
        Preprocessor { spec, frames: video.frames, max_pixels: DEFAULT_MAX_PIXELS }
    }

    /// Sets the budget of decoded pixels per sample (all frames of a video together).
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
                let s = self.size();
                let mut out = Vec::with_capacity(3 * s * s);
                self.normalise_extend(&img, &mut out);
                planes(out, 1, s)
            }
            Media::Video(path) => {
                let frames = load_video(path, self.frames, self.max_pixels)?;
                let s = self.size();
                // every frame appended in turn: no zeroed tensor written over
                let mut out = Vec::with_capacity(frames.len() * 3 * s * s);
                for f in &frames {
                    self.normalise_extend(f, &mut out);
                }
                planes(out, frames.len(), s)
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

    /// The blank picture's pixels, `frames` times: (F, 3, S, S), each frame
    /// `normalise(blank_picture(S))` -- what the matched blind control's vision graph gets for an
    /// image (F = 1) or a video of F frames.
    pub fn blank(&self, frames: usize) -> Array4<f32> {
        let frame = self.normalise(&blank_picture(self.spec.size)); // (3, S, S)
        let s = self.size();
        let mut out = Array4::<f32>::zeros((frames, 3, s, s));
        for mut f in out.outer_iter_mut() {
            f.assign(&frame);
        }
        out
    }

    /// (H, W, 3) u8 -> (3, S, S) f32, resized, cropped, rounded, normalised.
    pub fn normalise(&self, img: &RgbImage) -> Array3<f32> {
        let size = self.size();
        let mut out = Vec::with_capacity(3 * size * size);
        self.normalise_extend(img, &mut out);
        // 3 * S * S values by construction; were it ever otherwise, NaN pixels, which the decoder's
        // finite-logits check turns into an error, never a plausible answer
        Array3::from_shape_vec((3, size, size), out).unwrap_or_else(|_| Array3::from_elem((3, size, size), f32::NAN))
    }

    /// [`Preprocessor::normalise`] appended to `out`: 3 * S * S values, the (3, S, S) planes in
    /// order (a video's frames follow one another).
    fn normalise_extend(&self, img: &RgbImage, out: &mut Vec<f32>) {
        let size = self.size();
        let (w, h) = (img.width() as usize, img.height() as usize);
        // (H, W, 3) u8: the image's own buffer, not copied (an `f32` copy of a large picture
        // would take 4 times its memory).
        let copy;
        let src = match ArrayView3::from_shape((h, w, 3), img.as_raw()) {
            Ok(view) => view,
            // Not taken (an RgbImage's buffer is h * w * 3 long), but never a panic.
            Err(_) => {
                copy = Array3::from_shape_fn((h, w, 3), |(y, x, c)| img.get_pixel(x as u32, y as u32)[c]);
                copy.view()
            }
        };
        let (nh, nw) = match self.spec.crop {
            CropMode::None => (size, size),
            CropMode::Center => resized_dims(h, w, size, self.spec.size_rounding),
        };
        let channel = |c: usize| (self.spec.mean[c], self.spec.std[c], self.spec.rescale);
        if (h, w) == (size, size) {
            // Whole 8-bit values: rounding and clamping change nothing, so each channel is a
            // table of the 256 values the formula gives (the same arithmetic, computed once).
            for c in 0..3 {
                let (mean, std, rescale) = channel(c);
                let table: [f32; 256] = std::array::from_fn(|v| (f32::from(v as u8) * rescale - mean) / std);
                match src.as_slice() {
                    // one plane from the interleaved RGB bytes
                    Some(rgb) => out.extend(rgb.chunks_exact(3).map(|px| table[usize::from(px[c])])),
                    None => out.extend(src.index_axis(Axis(2), c).iter().map(|&v| table[usize::from(v)])),
                }
            }
            return;
        }
        let resized = resize::resize(src, nh, nw, self.spec.resize);
        let (top, left) = ((nh.saturating_sub(size)) / 2, (nw.saturating_sub(size)) / 2);
        let crop = resized.slice(s![top..top + size, left..left + size, ..]);
        for c in 0..3 {
            let (mean, std, rescale) = channel(c);
            // one channel of the crop, (S, S), in row-major order
            out.extend(crop.index_axis(Axis(2), c).iter().map(|&v| (round_byte(v) * rescale - mean) / std));
        }
    }

    /// Stacks per-sample pixels (each (F, 3, S, S), the same F) into (B, F, 3, S, S).
    pub fn stack(samples: &[ArrayView4<'_, f32>]) -> Result<Array5<f32>> {
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

/// The (height, width) a `crop: center` picture of `h` x `w` is resized to before its centre
/// `size` x `size` is cut: the shorter side to `size`, the longer one scaled alike and rounded
/// `rounding`'s way (Python's round for the zoo's exporter, down for transformers' processors:
/// 52 x 40 to 32 is 41.6 x 32, so 42 x 32 or 41 x 32), never below `size`.
pub fn resized_dims(h: usize, w: usize, size: usize, rounding: SizeRounding) -> (usize, usize) {
    let short = h.min(w) as f64;
    let side = |n: usize| {
        let n = n as f64;
        let x = match rounding {
            // media.py: round(n * (size / short))
            SizeRounding::HalfEven => (n * (size as f64 / short)).round_ties_even(),
            // transformers' get_resize_output_image_size: int(size * n / short), exact for integers
            SizeRounding::Floor => (size as f64 * n / short).floor(),
        };
        (x as usize).max(size)
    };
    (side(h), side(w))
}

/// `frames` (3, S, S) planes appended in turn as one (F, 3, S, S) tensor.
fn planes(values: Vec<f32>, frames: usize, size: usize) -> Result<Array4<f32>> {
    let n = values.len();
    Array4::from_shape_vec((frames, 3, size, size), values).map_err(|_| Error::InvalidArgument {
        what: "pixel values",
        value: format!("{n} values"),
        expected: format!("{frames} frames of 3 x {size} x {size}"),
    })
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

/// Opens a media file for reading, refusing what is not a regular file (checked on the open file,
/// which a FIFO does not block opening: `O_NONBLOCK`) or is larger than [`MAX_MEDIA_BYTES`].
pub fn open_media(path: &Path) -> Result<File> {
    media_file(path, crate::files::open_regular(path, "media file", MAX_MEDIA_BYTES)).map(|(file, _)| file)
}

/// Reads a media file whole, with [`open_media`]'s checks.
fn read_media(path: &Path) -> Result<Vec<u8>> {
    media_file(path, crate::files::read_regular(path, "media file", MAX_MEDIA_BYTES))
}

/// A refused media file is an image error naming it (the rest as they are).
fn media_file<T>(path: &Path, result: Result<T>) -> Result<T> {
    match result {
        Err(Error::FileRefused { message, .. }) => Err(Error::image(path, message)),
        other => other,
    }
}

/// A reader of the image file `path` with its format guessed from the content (else from the
/// extension). The file is read whole first: a picture is decoded whole anyway, and one read
/// replaces a buffered reader's several reads and a seek.
fn image_reader(path: &Path) -> Result<ImageReader<Cursor<Vec<u8>>>> {
    let mut reader = ImageReader::new(Cursor::new(read_media(path)?))
        .with_guessed_format()
        .map_err(|e| Error::io("reading", path, e))?;
    if reader.format().is_none() {
        match ImageFormat::from_path(path) {
            Ok(f) => reader.set_format(f),
            Err(_) => {
                return Err(Error::image(
                    path,
                    "is not an image this build reads; expected a PNG, JPEG, GIF or WebP image",
                ))
            }
        }
    }
    Ok(reader)
}

/// Decodes an image file to 8-bit RGB with its EXIF orientation applied.
pub fn load_image(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let decoder = image_reader(path)?.into_decoder().map_err(|e| image_error(path, e))?;
    decode_image(path, decoder, max_pixels)
}

/// [`load_image`] from a decoder that has read `path`'s header.
fn decode_image(path: &Path, mut decoder: impl ImageDecoder, max_pixels: u64) -> Result<RgbImage> {
    let (w, h) = decoder.dimensions();
    check_pixels(path, w, h, max_pixels)?;
    decoder.set_limits(limits(max_pixels)).map_err(|e| image_error(path, e))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, e))?;
    img.apply_orientation(orientation);
    // `into_rgb8` keeps an RGB8 buffer as it is instead of copying it.
    Ok(img.into_rgb8())
}

/// Extensions of frame files in a video folder.
const FRAME_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// `frames` frames of a video folder or animated GIF, sampled uniformly. The decoded pixels of
/// the sample (the sampled frames of a folder; every frame of a GIF) must fit in `max_pixels`.
pub fn load_video(path: &Path, frames: usize, max_pixels: u64) -> Result<Vec<RgbImage>> {
    if path.is_dir() {
        return load_frame_folder(path, frames, max_pixels);
    }
    let mut file = open_media(path)?;
    let canvas = gif_canvas(&mut file)
        .map_err(|e| Error::image(path, format!("is neither a folder of frames nor an animated GIF ({e})")))?;
    let (w, h, n) = (canvas.width, canvas.height, canvas.frames);
    check_pixels(path, w, h, max_pixels)?;
    let total = u64::from(w) * u64::from(h) * n as u64;
    if total > max_pixels {
        return Err(budget_error(path, &format!("{n} frames of {w} x {h}"), total, max_pixels));
    }
    let (count, kept) = decode_gif(path, &mut file, n, frames, max_pixels)?;
    if count == n {
        return Ok(kept);
    }
    // The decoder found another number of frames than the block walk (a damaged file it reads
    // past, or stops early in): sample from its own count. The budget still holds, as the decoder
    // checks the pixels it produces.
    let (again, kept) = decode_gif(path, &mut file, count, frames, max_pixels)?;
    if again != count {
        return Err(Error::image(path, format!("decodes to {count} frames, then to {again}")));
    }
    Ok(kept)
}

/// Decodes the GIF `file` from its start, keeping the `frames` frames sampled from `n`; returns
/// the number of frames decoded and the sampled ones (none when `n` was not that number).
fn decode_gif(
    path: &Path,
    file: &mut File,
    n: usize,
    frames: usize,
    max_pixels: u64,
) -> Result<(usize, Vec<RgbImage>)> {
    file.rewind().map_err(|e| Error::io("reading", path, e))?;
    let mut decoder = image::codecs::gif::GifDecoder::new(BufReader::new(&mut *file))
        .map_err(|e| Error::image(path, format!("is neither a folder of frames nor an animated GIF ({e})")))?;
    decoder.set_limits(limits(max_pixels)).map_err(|e| image_error(path, e))?;
    let picked = if n > 0 { uniform_indices(n, frames) } else { Vec::new() };
    let mut kept: Vec<(usize, RgbImage)> = Vec::new();
    let mut decoded = 0u64;
    let mut count = 0;
    for (i, frame) in decoder.into_frames().enumerate() {
        let frame = frame.map_err(|e| image_error(path, e))?;
        let (fw, fh) = frame.buffer().dimensions();
        decoded += u64::from(fw) * u64::from(fh);
        if decoded > max_pixels {
            return Err(budget_error(path, &format!("more than {i} frames of {fw} x {fh}"), decoded, max_pixels));
        }
        if picked.contains(&i) {
            kept.push((i, DynamicImage::ImageRgba8(frame.into_buffer()).into_rgb8()));
        }
        count = i + 1;
    }
    if count == 0 {
        return Err(Error::image(path, "has no frames"));
    }
    if count != n {
        return Ok((count, Vec::new()));
    }
    let sampled = picked
        .into_iter()
        .map(|i| {
            kept.iter()
                .find(|(k, _)| *k == i)
                .map(|(_, img)| img.clone())
                .ok_or_else(|| Error::image(path, format!("frame {i} did not decode")))
        })
        .collect::<Result<_>>()?;
    Ok((count, sampled))
}

/// The sampled frames of a folder of frame images.
fn load_frame_folder(path: &Path, frames: usize, max_pixels: u64) -> Result<Vec<RgbImage>> {
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
    let picked = uniform_indices(files.len(), frames);
    let mut unique = picked.clone();
    unique.dedup();
    // Every sampled frame's size from its header first (each file opened once, its decoder kept
    // for the pixels): the budget covers them together.
    let mut headers = Vec::with_capacity(unique.len());
    let mut total = 0u64;
    for &i in &unique {
        let decoder = image_reader(&files[i])?.into_decoder().map_err(|e| image_error(&files[i], e))?;
        let (w, h) = decoder.dimensions();
        total += u64::from(w) * u64::from(h);
        headers.push((i, decoder));
    }
    if total > max_pixels {
        return Err(budget_error(path, &format!("{} sampled frames", unique.len()), total, max_pixels));
    }
    let mut decoded: Vec<(usize, RgbImage)> = Vec::with_capacity(unique.len());
    for (i, decoder) in headers {
        decoded.push((i, decode_image(&files[i], decoder, max_pixels)?));
    }
    // a frame picked again later is copied; its last (or only) pick moves it
    let mut frames = Vec::with_capacity(picked.len());
    for (n, &i) in picked.iter().enumerate() {
        let k = decoded.iter().position(|(j, _)| *j == i).ok_or_else(|| Error::image(&files[i], "did not decode"))?;
        let again = picked[n + 1..].contains(&i);
        frames.push(if again { decoded[k].1.clone() } else { std::mem::take(&mut decoded[k].1) });
    }
    Ok(frames)
}

fn budget_error(path: &Path, what: &str, total: u64, max_pixels: u64) -> Error {
    Error::image(
        path,
        format!("decodes to {what} = {total} pixels, over the pixel budget of {max_pixels} per sample (a guard against decompression bombs); use fewer or smaller frames"),
    )
}

/// A GIF's logical screen and number of frames, read from its block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GifCanvas {
    /// Logical screen width: every decoded frame is this wide.
    pub width: u32,
    /// Logical screen height.
    pub height: u32,
    /// Image descriptors (frames).
    pub frames: usize,
}

/// Walks the blocks of a GIF (GIF89a spec, section 17ff.) to count its frames without decoding
/// any: header, logical screen descriptor, global colour table, then extensions (`0x21`), image
/// descriptors (`0x2C`, each one frame) with their LZW sub-blocks, up to the trailer (`0x3B`). A
/// truncated file ends the walk where it ends, as decoders do.
pub fn gif_canvas(reader: &mut impl Read) -> std::result::Result<GifCanvas, String> {
    let mut r = BufReader::new(reader);
    let mut header = [0u8; 13];
    r.read_exact(&mut header).map_err(|_| "shorter than a GIF header".to_string())?;
    if &header[..3] != b"GIF" {
        return Err("no GIF signature".into());
    }
    let width = u32::from(u16::from_le_bytes([header[6], header[7]]));
    let height = u32::from(u16::from_le_bytes([header[8], header[9]]));
    let mut frames = 0;
    let table = |packed: u8| if packed & 0x80 != 0 { 3usize << ((packed & 7) + 1) } else { 0 };
    let skip = |r: &mut BufReader<_>, n: usize| -> bool {
        std::io::copy(&mut r.by_ref().take(n as u64), &mut std::io::sink()).is_ok_and(|k| k == n as u64)
    };
    if !skip(&mut r, table(header[10])) {
        return Ok(GifCanvas { width, height, frames });
    }
    let byte = |r: &mut BufReader<_>| -> Option<u8> {
        let mut b = [0u8; 1];
        r.read_exact(&mut b).ok().map(|()| b[0])
    };
    // Data sub-blocks: a length byte, that many bytes, ..., a zero length.
    let sub_blocks = |r: &mut BufReader<_>| -> bool {
        loop {
            match byte(r) {
                Some(0) => return true,
                Some(n) => {
                    if !skip(r, usize::from(n)) {
                        return false;
                    }
                }
                None => return false,
            }
        }
    };
    loop {
        match byte(&mut r) {
            Some(0x21) => {
                if byte(&mut r).is_none() || !sub_blocks(&mut r) {
                    break;
                }
            }
            Some(0x2c) => {
                let mut d = [0u8; 9];
                if r.read_exact(&mut d).is_err() {
                    break;
                }
                frames += 1;
                if !skip(&mut r, table(d[8])) || byte(&mut r).is_none() || !sub_blocks(&mut r) {
                    break;
                }
            }
            // The trailer, the end of the file, or a byte no block starts with (decoders stop
            // there too; the frame count is checked against the decoder's).
            _ => break,
        }
    }
    Ok(GifCanvas { width, height, frames })
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
                size_rounding: SizeRounding::HalfEven,
                rescale: 1.0 / 255.0,
                mean: [0.5, 0.5, 0.5],
                std: [0.5, 0.5, 0.5],
            },
            VideoSpec { frames: 2, sampling: crate::manifest::FrameSampling::Uniform },
        )
    }

    #[test]
    fn round_byte_is_round_ties_even_then_clamp_bit_for_bit() {
        let reference = |v: f32| v.round_ties_even().clamp(0.0, 255.0);
        // every float from -4 to 260 in steps of 1/64 (all halves included), and the edges
        let grid = (-256..=16640).map(|i| i as f32 / 64.0);
        let edges = [f32::MIN_POSITIVE, -f32::MIN_POSITIVE, 1e-30, 254.5, 255.5, 0.49999997, 1e9, -1e9, f32::INFINITY];
        for v in grid.chain(edges) {
            let (a, b) = (round_byte(v), reference(v));
            // -0.0 and 0.0 both normalise to the same value: (0 * rescale - mean) / std
            assert!(a == b && (a.to_bits() == b.to_bits() || a == 0.0), "{v}: {a} vs {b}");
        }
        assert!(round_byte(f32::NAN).is_nan());
    }

    #[test]
    fn whole_byte_pictures_normalise_as_the_formula_says() {
        let mut p = prep(4);
        p.spec.mean = [0.481_454_66, 0.457_827_5, 0.408_210_73];
        p.spec.std = [0.268_629_54, 0.261_302_6, 0.275_777_1];
        let img = RgbImage::from_fn(4, 4, |x, y| image::Rgb([(x * 60) as u8, (y * 70) as u8, (x * y * 17) as u8]));
        let out = p.normalise(&img);
        for (c, y, x) in indices(4) {
            let v = f32::from(img.get_pixel(x as u32, y as u32)[c]);
            let want = (v * p.spec.rescale - p.spec.mean[c]) / p.spec.std[c];
            assert_eq!(out[[c, y, x]].to_bits(), want.to_bits(), "({c}, {y}, {x})");
        }
    }

    fn indices(s: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..3).flat_map(move |c| (0..s).flat_map(move |y| (0..s).map(move |x| (c, y, x))))
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
    fn the_longer_side_rounds_half_to_even_for_the_zoo_and_down_for_transformers() {
        // 52 x 40 -> 41.6 x 32; 45 x 60 -> 32 x 42.67; 40 x 50 -> 32 x 40 either way.
        assert_eq!(resized_dims(52, 40, 32, SizeRounding::HalfEven), (42, 32));
        assert_eq!(resized_dims(52, 40, 32, SizeRounding::Floor), (41, 32));
        assert_eq!(resized_dims(45, 60, 32, SizeRounding::HalfEven), (32, 43));
        assert_eq!(resized_dims(45, 60, 32, SizeRounding::Floor), (32, 42));
        assert_eq!(resized_dims(40, 50, 32, SizeRounding::Floor), (32, 40));
        // Python's round: 2.5 -> 2 (here 5 x 2 to 1 is 2.5 x 1, kept at least `size`).
        assert_eq!(resized_dims(5, 2, 1, SizeRounding::HalfEven), (2, 1));
        assert_eq!(resized_dims(7, 2, 1, SizeRounding::HalfEven), (4, 1));
        // The two give other pixels for such a picture.
        let img = RgbImage::from_fn(40, 52, |x, y| image::Rgb([(x * 6) as u8, (y * 4) as u8, ((x + y) * 2) as u8]));
        let mut floor = prep(32);
        floor.spec.size_rounding = SizeRounding::Floor;
        assert_ne!(prep(32).normalise(&img), floor.normalise(&img));
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
    fn the_blank_picture_is_a_white_picture_through_the_same_path() {
        let clip = Preprocessor::new(
            PreprocessSpec {
                size: 16,
                resize: ResizeFilter::Bicubic,
                crop: CropMode::Center,
                size_rounding: SizeRounding::HalfEven,
                rescale: 1.0 / 255.0,
                // CLIP's statistics, as the zoo's manifests write them.
                mean: [0.481_454_66_f64 as f32, 0.457_827_5_f64 as f32, 0.408_210_73_f64 as f32],
                std: [0.268_629_54_f64 as f32, 0.261_302_58_f64 as f32, 0.275_777_11_f64 as f32],
            },
            VideoSpec { frames: 2, sampling: crate::manifest::FrameSampling::Uniform },
        );
        assert_eq!(blank_picture(16).dimensions(), (16, 16));
        assert!(blank_picture(16).pixels().all(|p| p.0 == [255, 255, 255]));
        for frames in [1, 2, 5] {
            let blank = clip.blank(frames);
            assert_eq!(blank.dim(), (frames, 3, 16, 16));
            // A white picture of another size and shape is resized and cropped to the same pixels.
            let white = clip.normalise(&RgbImage::from_pixel(37, 23, image::Rgb([255, 255, 255])));
            for f in blank.outer_iter() {
                assert_eq!(f, white);
            }
        }
        // White under CLIP's statistics: (1 - mean) / std per channel.
        let px = clip.blank(1);
        for (c, want) in [1.930_336_f32, 2.074_884, 2.145_897].into_iter().enumerate() {
            assert!(
                px.index_axis(Axis(1), c).iter().all(|v| (v - want).abs() < 1e-5),
                "channel {c}: {}",
                px[[0, c, 0, 0]]
            );
        }
        // Not the zero tensor, nor black.
        let black = clip.normalise(&RgbImage::new(16, 16));
        assert!(px.index_axis(Axis(0), 0) != black);
    }

    #[test]
    fn stack_rejects_mixed_frame_counts() {
        let a = Array4::<f32>::zeros((1, 3, 2, 2));
        let b = Array4::<f32>::zeros((2, 3, 2, 2));
        assert_eq!(Preprocessor::stack(&[a.view(), a.view()]).map(|x| x.dim()).ok(), Some((2, 1, 3, 2, 2)));
        assert!(Preprocessor::stack(&[a.view(), b.view()]).is_err());
    }
}
