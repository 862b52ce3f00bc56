//! Thumbnails: `WxH` (crop to fill, centred), `WxHt` (top), `WxHb` (bottom), `WxHf`
//! (fit inside, no crop), `0xH` and `Wx0` (keep the ratio). Decoding is bounded: the
//! header is read first and images over [`MAX_PIXELS`] are refused before any pixel is.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The largest source image (in pixels) a thumb is made from.
pub const MAX_PIXELS: u64 = 40_000_000;

/// The largest side of a thumb.
const MAX_SIDE: u32 = 4000;

/// How the source fills the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbMode {
    /// Crop to fill, centred.
    Center,
    /// Crop to fill, keeping the top.
    Top,
    /// Crop to fill, keeping the bottom.
    Bottom,
    /// Fit inside without cropping.
    Fit,
}

/// A parsed `thumb` size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSize {
    /// Width (0 = from the ratio).
    pub width: u32,
    /// Height (0 = from the ratio).
    pub height: u32,
    /// Fill mode.
    pub mode: ThumbMode,
}

impl ThumbSize {
    /// Parses `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0`; `0x0` and anything else is `None`.
    pub fn parse(text: &str) -> Option<ThumbSize> {
        let (body, mode) = match text.as_bytes().last()? {
            b't' => (&text[..text.len() - 1], ThumbMode::Top),
            b'b' => (&text[..text.len() - 1], ThumbMode::Bottom),
            b'f' => (&text[..text.len() - 1], ThumbMode::Fit),
            _ => (text, ThumbMode::Center),
        };
        let (w, h) = body.split_once('x')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(w) || !digits(h) {
            return None;
        }
        let (width, height) = (w.parse().ok()?, h.parse().ok()?);
        if (width == 0 && height == 0) || width > MAX_SIDE || height > MAX_SIDE {
            return None;
        }
        Some(ThumbSize {
            width,
            height,
            mode,
        })
    }
}

/// Whether a file with this name can have thumbs (by its extension).
pub fn thumb_source_ok(filename: &str) -> bool {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(ext.as_str(), "png" | "jpg" | "jpeg" | "gif" | "webp")
}

/// Why a thumb could not be made (the original is served instead).
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// Over [`MAX_PIXELS`].
    #[error("image too large: {0} pixels")]
    TooLarge(u64),
    /// Not a decodable image.
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
    /// Reading the header failed.
    #[error("image header: {0}")]
    Io(#[from] std::io::Error),
}

/// Makes a thumb of `source`; JPEG, GIF and PNG keep their format, others become PNG.
pub fn render_thumb(source: &[u8], size: ThumbSize) -> Result<Vec<u8>, ThumbError> {
    let reader = ImageReader::new(Cursor::new(source)).with_guessed_format()?;
    let format = reader.format();
    let (w, h) = reader.into_dimensions()?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(ThumbError::TooLarge(pixels));
    }
    let mut reader = ImageReader::new(Cursor::new(source)).with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(w.max(1));
    limits.max_image_height = Some(h.max(1));
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let image = reader.decode()?;
    let thumb = resize(&image, size);
    let out_format = match format {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::Png)) => f,
        _ => ImageFormat::Png,
    };
    let thumb = if out_format == ImageFormat::Jpeg {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
    } else {
        thumb
    };
    let mut out = Cursor::new(Vec::new());
    thumb.write_to(&mut out, out_format)?;
    Ok(out.into_inner())
}

fn scaled(from: u32, num: u32, den: u32) -> u32 {
    ((u64::from(from) * u64::from(num) + u64::from(den) / 2) / u64::from(den.max(1))).max(1) as u32
}

fn resize(image: &DynamicImage, size: ThumbSize) -> DynamicImage {
    let (sw, sh) = (image.width().max(1), image.height().max(1));
    let filter = FilterType::Triangle;
    if size.width == 0 {
        return image.resize_exact(scaled(sw, size.height, sh), size.height, filter);
    }
    if size.height == 0 {
        return image.resize_exact(size.width, scaled(sh, size.width, sw), filter);
    }
    if size.mode == ThumbMode::Fit {
        return image.resize(size.width, size.height, filter);
    }
    // Scale so both sides cover the box, then crop the overflow.
    let (tw, th) = (size.width, size.height);
    let (rw, rh) = if u64::from(sw) * u64::from(th) > u64::from(sh) * u64::from(tw) {
        (scaled(sw, th, sh).max(tw), th)
    } else {
        (tw, scaled(sh, tw, sw).max(th))
    };
    let filled = image.resize_exact(rw, rh, filter);
    let x = (rw - tw) / 2;
    let y = match size.mode {
        ThumbMode::Top => 0,
        ThumbMode::Bottom => rh - th,
        _ => (rh - th) / 2,
    };
    filled.crop_imm(x, y, tw, th)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Rgb, RgbImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut img = RgbImage::new(w, h);
        for (x, y, p) in img.enumerate_pixels_mut() {
            // Top half red, bottom half blue: shows which part a crop kept.
            *p = if y < h / 2 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            };
            let _ = x;
        }
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    /// A 1x1 PNG whose header claims `w` x `h` (with a valid header checksum).
    fn claims(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn dims(bytes: &[u8]) -> (u32, u32) {
        image::load_from_memory(bytes).expect("decode").dimensions()
    }

    #[test]
    fn parse_sizes() {
        let ok = [
            ("100x100", 100, 100, ThumbMode::Center),
            ("50x20t", 50, 20, ThumbMode::Top),
            ("50x20b", 50, 20, ThumbMode::Bottom),
            ("50x20f", 50, 20, ThumbMode::Fit),
            ("0x20", 0, 20, ThumbMode::Center),
            ("20x0", 20, 0, ThumbMode::Center),
        ];
        for (text, w, h, mode) in ok {
            assert_eq!(
                ThumbSize::parse(text),
                Some(ThumbSize {
                    width: w,
                    height: h,
                    mode
                }),
                "{text}"
            );
        }
        for bad in [
            "", "0x0", "0x0t", "x", "10x", "x10", "10x10x", "10y10", "-1x10", "10x10z", "99999x1",
            "../x", "10x10%2f", " 10x10",
        ] {
            assert_eq!(ThumbSize::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_form() {
        let source = png(200, 100);
        let cases = [
            ("50x50", (50, 50)),
            ("50x50t", (50, 50)),
            ("50x50b", (50, 50)),
            ("50x50f", (50, 25)),
            ("0x20", (40, 20)),
            ("20x0", (20, 10)),
            ("300x300", (300, 300)),
        ];
        for (text, expected) in cases {
            let size = ThumbSize::parse(text).expect("size");
            let out = render_thumb(&source, size).expect("thumb");
            assert_eq!(dims(&out), expected, "{text}");
            assert_eq!(image::guess_format(&out).expect("format"), ImageFormat::Png);
        }
        // A tall image cropped at the top keeps red, at the bottom blue.
        let tall = png(20, 100);
        let top = image::load_from_memory(
            &render_thumb(&tall, ThumbSize::parse("20x20t").expect("size")).expect("thumb"),
        )
        .expect("decode")
        .to_rgb8();
        assert_eq!(top.get_pixel(10, 10), &Rgb([255, 0, 0]));
        let bottom = image::load_from_memory(
            &render_thumb(&tall, ThumbSize::parse("20x20b").expect("size")).expect("thumb"),
        )
        .expect("decode")
        .to_rgb8();
        assert_eq!(bottom.get_pixel(10, 10), &Rgb([0, 0, 255]));
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        // A PNG header claiming 100000 x 100000 pixels, with no pixel data.
        let bomb = claims(100_000, 100_000);
        let started = std::time::Instant::now();
        let error = render_thumb(&bomb, ThumbSize::parse("10x10").expect("size"));
        assert!(matches!(error, Err(ThumbError::TooLarge(_))), "{error:?}");
        assert!(started.elapsed().as_secs() < 1);
        assert!(render_thumb(b"not an image", ThumbSize::parse("10x10").expect("size")).is_err());
        // Exactly at the cap passes the check (it fails later only for lack of data).
        let edge = claims(8000, 5000);
        assert!(!matches!(
            render_thumb(&edge, ThumbSize::parse("10x10").expect("size")),
            Err(ThumbError::TooLarge(_))
        ));
        let over = claims(8001, 5000);
        assert!(matches!(
            render_thumb(&over, ThumbSize::parse("10x10").expect("size")),
            Err(ThumbError::TooLarge(_))
        ));
    }

    #[test]
    fn sources() {
        for ok in ["a.png", "a.JPG", "a.jpeg", "a.gif", "a.webp"] {
            assert!(thumb_source_ok(ok), "{ok}");
        }
        for bad in ["a.svg", "a.txt", "a", "a.png.html"] {
            assert!(!thumb_source_ok(bad), "{bad}");
        }
    }
}
