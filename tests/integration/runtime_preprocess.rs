//! Preprocessing: formats, colour types, EXIF orientation, video sampling, and agreement with the
//! exporter's PyTorch preprocessing (antialiased bicubic, round to 8 bit, CLIP normalisation).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use lynx_zoo::manifest::{CropMode, FrameSampling, PreprocessSpec, ResizeFilter, SizeRounding, VideoSpec};
use lynx_zoo::preprocess::{load_image, load_video, Media, Preprocessor, DEFAULT_MAX_PIXELS};
use lynx_zoo::Zoo;
use ndarray::Array4;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime")
}

fn golden_pixels(rel: &str, frames: usize) -> Array4<f32> {
    let bytes = std::fs::read(fixture().join("zoo").join(rel)).unwrap();
    let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Array4::from_shape_vec((frames, 3, 16, 16), v).unwrap()
}

fn tiny_preprocessor() -> Preprocessor {
    let zoo = Zoo::open(fixture().join("zoo")).unwrap();
    let m = zoo.manifest("tiny").unwrap();
    Preprocessor::new(m.preprocess.unwrap(), m.video.unwrap())
}

/// Largest difference, and how many values differ by more than `tol`.
fn compare(a: &Array4<f32>, b: &Array4<f32>, tol: f32) -> (f32, usize) {
    assert_eq!(a.dim(), b.dim());
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    let over = a.iter().zip(b).filter(|(x, y)| (*x - *y).abs() > tol).count();
    (max, over)
}

#[test]
fn image_matches_the_pytorch_reference() {
    // scene.png is 24 x 20: shorter side 20 -> 16, width 24 -> 19, centre crop 16 x 16.
    let got = tiny_preprocessor().pixels(&Media::image(fixture().join("media/scene.png"))).unwrap();
    let want = golden_pixels("onnx/goldens/pixels-16-image.f32", 1);
    // One 8-bit level is 1/255/std ~ 0.015; values are rounded to 8 bit on both sides, so they
    // agree exactly except where a float sits on a rounding boundary.
    let (max, over) = compare(&got, &want, 1e-5);
    assert!(max < 0.016, "max difference {max}");
    assert!(over <= 3, "{over} of {} values differ", got.len());
}

#[test]
fn video_folder_matches_the_pytorch_reference() {
    // 3 frames, 2 sampled uniformly: frames 0 and 2.
    let got = tiny_preprocessor().pixels(&Media::video(fixture().join("media/clip"))).unwrap();
    let want = golden_pixels("onnx/goldens/pixels-16-video.f32", 2);
    let (max, _) = compare(&got, &want, 1e-5);
    assert!(max < 1e-5, "max difference {max}");
}

fn write_png_rgba(path: &Path, img: &RgbaImage) {
    img.save(path).unwrap();
}

#[test]
fn rgba_grey_and_16_bit_become_rgb() {
    let dir = tempfile::tempdir().unwrap();
    // RGBA: alpha is dropped (PIL convert("RGB")), colour kept
    let rgba = RgbaImage::from_fn(5, 4, |x, _| Rgba([200, 10 * x as u8, 7, if x % 2 == 0 { 0 } else { 255 }]));
    let p = dir.path().join("rgba.png");
    write_png_rgba(&p, &rgba);
    let rgb = load_image(&p, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(rgb.dimensions(), (5, 4));
    assert_eq!(rgb.get_pixel(2, 1), &Rgb([200, 20, 7]));
    // 16-bit grey: equal channels, 8-bit values
    let grey = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(3, 3, |x, y| {
        image::Luma([((x + 3 * y) * 8000) as u16])
    });
    let p = dir.path().join("grey16.png");
    grey.save(&p).unwrap();
    let rgb = load_image(&p, DEFAULT_MAX_PIXELS).unwrap();
    let px = rgb.get_pixel(2, 2);
    assert_eq!(px[0], px[1]);
    assert_eq!(px[1], px[2]);
    assert_eq!(px[0], (64000.0f32 / 257.0).round() as u8);
}

/// JPEG bytes with an EXIF APP1 segment carrying `orientation`.
fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    // TIFF header (little endian), one IFD entry: 0x0112 Orientation, SHORT, count 1.
    let mut tiff = b"II*\x00\x08\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    // 32 x 16, left half red, right half blue
    let img = RgbImage::from_fn(32, 16, |x, _| if x < 16 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let p = dir.path().join("plain.jpg");
    std::fs::write(&p, jpeg_with_orientation(&img, 1)).unwrap();
    assert_eq!(load_image(&p, DEFAULT_MAX_PIXELS).unwrap().dimensions(), (32, 16));
    // orientation 6: rotate 90 degrees clockwise to display -> 16 x 32, red on top
    let p = dir.path().join("rotated.jpg");
    std::fs::write(&p, jpeg_with_orientation(&img, 6)).unwrap();
    let out = load_image(&p, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(out.dimensions(), (16, 32));
    let top = out.get_pixel(8, 4);
    let bottom = out.get_pixel(8, 28);
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
}

#[test]
fn webp_and_gif_decode() {
    let dir = tempfile::tempdir().unwrap();
    let img = RgbaImage::from_fn(6, 5, |x, y| Rgba([(x * 40) as u8, (y * 50) as u8, 90, 255]));
    let p = dir.path().join("img.webp");
    let mut buf = Cursor::new(Vec::new());
    image::codecs::webp::WebPEncoder::new_lossless(&mut buf)
        .write_image(img.as_raw(), 6, 5, image::ExtendedColorType::Rgba8)
        .unwrap();
    std::fs::write(&p, buf.into_inner()).unwrap();
    let rgb = load_image(&p, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(rgb.get_pixel(5, 4), &Rgb([200, 200, 90]));
}

#[test]
fn animated_gif_frames_are_sampled_uniformly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clip.gif");
    let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]];
    {
        let file = std::fs::File::create(&p).unwrap();
        let mut enc = image::codecs::gif::GifEncoder::new(file);
        for c in colours {
            let frame = RgbaImage::from_pixel(8, 8, Rgba([c[0], c[1], c[2], 255]));
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    // 5 frames, 2 sampled: floor(0.5 * 5 / 2) = 1 and floor(1.5 * 5 / 2) = 3
    let frames = load_video(&p, 2, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].get_pixel(3, 3), &Rgb([0, 255, 0]));
    assert_eq!(frames[1].get_pixel(3, 3), &Rgb([255, 255, 0]));
    // as model input: (F, 3, S, S)
    let px = tiny_preprocessor().pixels(&Media::video(&p)).unwrap();
    assert_eq!(px.dim(), (2, 3, 16, 16));
}

#[test]
fn a_folder_with_fewer_frames_than_sampled_repeats_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let colours = [[255u8, 0, 0], [0, 0, 255]];
    for (i, c) in colours.iter().enumerate() {
        RgbImage::from_pixel(6, 4, Rgb(*c)).save(dir.path().join(format!("frame_{i:02}.png"))).unwrap();
    }
    // 2 frames, 5 sampled: floor((2i + 1) * 2 / 10) = 0, 0, 1, 1, 1
    let frames = load_video(dir.path(), 5, DEFAULT_MAX_PIXELS).unwrap();
    let got: Vec<[u8; 3]> = frames.iter().map(|f| f.get_pixel(2, 2).0).collect();
    assert_eq!(got, [colours[0], colours[0], colours[1], colours[1], colours[1]]);
    assert!(frames.iter().all(|f| f.dimensions() == (6, 4)));
    // the budget covers the distinct frames together: 2 x 24 pixels
    assert!(load_video(dir.path(), 5, 48).is_ok());
    let err = load_video(dir.path(), 5, 47).unwrap_err();
    assert!(err.to_string().contains("2 sampled frames"), "{err}");
}

#[test]
fn pixel_limit_is_configurable() {
    let p = fixture().join("media/scene.png"); // 24 x 20 = 480 pixels
    assert!(load_image(&p, 480).is_ok());
    let err = load_image(&p, 479).unwrap_err();
    assert!(err.to_string().contains("480 pixels"), "{err}");
    let prep = tiny_preprocessor().with_max_pixels(100);
    assert!(prep.pixels(&Media::image(&p)).is_err());
}

#[test]
fn stretch_without_crop() {
    let spec = PreprocessSpec {
        size: 4,
        resize: ResizeFilter::Bilinear,
        crop: CropMode::None,
        size_rounding: SizeRounding::HalfEven,
        rescale: 1.0 / 255.0,
        mean: [0.0; 3],
        std: [1.0; 3],
    };
    let prep = Preprocessor::new(spec, VideoSpec { frames: 1, sampling: FrameSampling::Uniform });
    let img = RgbImage::from_pixel(10, 2, Rgb([255, 128, 0]));
    let out = prep.normalise(&img);
    assert_eq!(out.dim(), (3, 4, 4));
    assert!(out.iter().step_by(16).zip([1.0, 128.0 / 255.0, 0.0]).all(|(a, b)| (a - b).abs() < 1e-6));
}

/// A GIF of `frames` 1 x 1 frames on a `w` x `h` canvas: a few dozen bytes that decode to
/// `frames * w * h` RGBA pixels (every frame is composited onto a full canvas).
fn canvas_gif(w: u16, h: u16, frames: usize) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&w.to_le_bytes());
    g.extend_from_slice(&h.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]); // a 2-colour global table
    for _ in 0..frames {
        g.extend_from_slice(&[0x21, 0xf9, 4, 0, 10, 0, 0, 0]); // graphic control: 0.1 s
        g.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // a 1 x 1 frame at (0, 0)
        g.extend_from_slice(&[2, 2, 0x44, 0x01, 0]); // LZW: clear, index 0, end
    }
    g.push(0x3b);
    g
}

#[test]
fn animated_canvases_count_against_the_pixel_budget_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    // 131 bytes, 4 frames of 6000 x 6000: 144 Mpx (742 MB before the budget covered frames).
    let p = dir.path().join("bomb.gif");
    std::fs::write(&p, canvas_gif(6000, 6000, 4)).unwrap();
    let started = std::time::Instant::now();
    let err = load_video(&p, 8, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("4 frames") && err.contains("6000 x 6000") && err.contains("bomb.gif"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "decoded before refusing");
    let err = tiny_preprocessor().pixels(&Media::video(&p)).unwrap_err().to_string();
    assert!(err.contains("pixel budget"), "{err}");
    // Each frame under the per-picture limit, their sum over it.
    std::fs::write(&p, canvas_gif(5000, 5000, 2)).unwrap();
    let err = load_video(&p, 2, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("2 frames") && err.contains("50000000"), "{err}");
    // The same shape within the budget decodes, to the canvas size.
    std::fs::write(&p, canvas_gif(40, 30, 3)).unwrap();
    let frames = load_video(&p, 2, DEFAULT_MAX_PIXELS).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].dimensions(), (40, 30));
    assert!(load_video(&p, 2, 40 * 30 * 3).is_ok());
    assert!(load_video(&p, 2, 40 * 30 * 3 - 1).is_err());
}

#[test]
fn media_must_be_regular_files_under_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    // A folder given as an image.
    let err = load_image(dir.path(), DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    // A sparse file over the size limit: refused from its size, nothing read.
    let big = dir.path().join("big.png");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(lynx_zoo::preprocess::MAX_MEDIA_BYTES + 1).unwrap();
    let err = load_image(&big, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("big.png") && err.contains("over the limit"), "{err}");
    let err = load_video(&big, 2, DEFAULT_MAX_PIXELS).unwrap_err().to_string();
    assert!(err.contains("over the limit"), "{err}");
}
