//! Uploaded pictures (avatars, chat pictures) made safe to show: decoded with the `image` crate
//! (JPEG, PNG, WebP) under limits checked before any pixel is decoded (a
//! decompression bomb is refused from its header), turned upright by its
//! EXIF orientation, and re-encoded, which leaves every metadata block
//! behind (GPS position, camera, time). HEIC, what iPhones shoot, is refused
//! with a reason: decoding it needs libheif, a C library this build does not
//! carry; iPhones convert to JPEG when an app picks a photo with the system
//! picker's compatible mode.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Most pixels an image may have: a 48-megapixel phone photo passes; a
/// small file claiming 100 000 × 100 000 does not.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Most bytes the decoder may allocate.
const MAX_ALLOC: u64 = 512 * 1024 * 1024;
/// The square sizes an avatar is stored in.
pub const AVATAR_SIZES: [u32; 3] = [64, 256, 512];
/// The size of the variant `avatar_url` points at (lists and bylines).
pub const AVATAR_URL_SIZE: u32 = 256;

/// Where an avatar variant is stored.
pub fn avatar_key(user_id: &str, version: i64, size: u32) -> String {
    format!("{}{size}.jpg", avatar_prefix(user_id, version))
}

/// The folder of one avatar version's variants.
pub fn avatar_prefix(user_id: &str, version: i64) -> String {
    format!("avatars/{user_id}/{version}/")
}

/// A chat picture as shown: at most this many pixels on its long side.
pub const DISPLAY_MAX: u32 = 2048;
/// A chat picture's thumbnail: at most this many pixels on its long side.
pub const THUMB_MAX: u32 = 320;
/// The shown picture and the thumbnail, under the media's output folder.
pub const DISPLAY_FILE: &str = "image.jpg";
pub const THUMB_FILE: &str = "thumb.jpg";

/// JPEG quality of the stored variants.
const QUALITY: u8 = 85;

/// Why a picture was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("HEIC images are not supported: send a JPEG, PNG or WebP")]
    Heic,
    #[error("not a JPEG, PNG or WebP image")]
    Unsupported,
    #[error("the image is {width}×{height}: more than {MAX_PIXELS} pixels")]
    TooLarge { width: u32, height: u32 },
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

/// The MIME type of a format this module decodes.
fn content_type(format: ImageFormat) -> Option<&'static str> {
    match format {
        ImageFormat::Jpeg => Some("image/jpeg"),
        ImageFormat::Png => Some("image/png"),
        ImageFormat::WebP => Some("image/webp"),
        _ => None,
    }
}

/// Whether `bytes` start like an ISO-BMFF HEIF file (`ftyp` with a HEIF brand).
fn is_heif(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"ftyp")
        && bytes.get(8..12).is_some_and(|brand| {
            [
                b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif",
            ]
            .iter()
            .any(|b| brand == *b)
        })
}

/// What a picture's header says: its type and its upright size (width and
/// height swapped when its orientation turns it a quarter). Reads no pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// A decoder for `bytes` with the limits on, and its type.
fn decoder(bytes: &[u8]) -> Result<(impl ImageDecoder + '_, &'static str), ImageError> {
    if is_heif(bytes) {
        return Err(ImageError::Heic);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = reader.format().ok_or(ImageError::Unsupported)?;
    let content_type = content_type(format).ok_or(ImageError::Unsupported)?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    Ok((decoder, content_type))
}

/// The picture's header, checked against the limits.
pub fn header(bytes: &[u8]) -> Result<Header, ImageError> {
    let (mut decoder, content_type) = decoder(bytes)?;
    let (width, height) = decoder.dimensions();
    let turned = decoder.orientation().is_ok_and(|o| {
        use image::metadata::Orientation::*;
        matches!(o, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
    });
    let (width, height) = if turned {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Header {
        content_type,
        width,
        height,
    })
}

/// Decodes the picture upright.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let (mut decoder, _) = decoder(bytes)?;
    let orientation = decoder.orientation();
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if let Ok(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image)
}

/// The avatar variants of `bytes`: the centre square at each of
/// [`AVATAR_SIZES`], as JPEG with no metadata. The square is brought to the
/// largest size once with the fast area-averaging `thumbnail` (a 12 MP
/// photo in tens of milliseconds, where a Catmull-Rom pass over it took a
/// second), and the smaller sizes come from that.
pub fn avatar_variants(bytes: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, ImageError> {
    let image = decode(bytes)?;
    let side = image.width().min(image.height());
    let square = image.crop_imm(
        (image.width() - side) / 2,
        (image.height() - side) / 2,
        side,
        side,
    );
    let largest = AVATAR_SIZES[AVATAR_SIZES.len() - 1];
    let base = if side > largest {
        square.thumbnail_exact(largest, largest)
    } else {
        square.resize_exact(largest, largest, FilterType::CatmullRom)
    };
    AVATAR_SIZES
        .iter()
        .map(|&size| {
            let variant = if size == largest {
                base.clone()
            } else {
                base.resize_exact(size, size, FilterType::CatmullRom)
            };
            Ok((size, jpeg(&variant)?))
        })
        .collect()
}

/// A chat picture made safe to send on: upright, without metadata, at
/// most [`DISPLAY_MAX`] px, with a thumbnail.
#[derive(Debug)]
pub struct ChatPicture {
    pub display: Vec<u8>,
    pub thumbnail: Vec<u8>,
    /// The shown picture's size.
    pub width: u32,
    pub height: u32,
}

fn jpeg(image: &DynamicImage) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&image.to_rgb8())
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// `image` scaled down (never up) to fit `max` × `max`, with the fast
/// area-averaging `thumbnail`.
fn fit(image: &DynamicImage, max: u32) -> DynamicImage {
    if image.width() <= max && image.height() <= max {
        image.clone()
    } else {
        image.thumbnail(max, max)
    }
}

/// The shown version and thumbnail of a chat picture.
pub fn chat_picture(bytes: &[u8]) -> Result<ChatPicture, ImageError> {
    let image = decode(bytes)?;
    let display = fit(&image, DISPLAY_MAX);
    Ok(ChatPicture {
        thumbnail: jpeg(&fit(&display, THUMB_MAX))?,
        width: display.width(),
        height: display.height(),
        display: jpeg(&display)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = ImageBuffer::from_fn(width, height, |x, _| Rgb([(x % 256) as u8, 0, 0]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn variants_are_squares_of_each_size() {
        let variants = avatar_variants(&png(300, 200)).unwrap();
        for (size, jpeg) in variants {
            let img = image::load_from_memory(&jpeg).unwrap();
            assert_eq!((img.width(), img.height()), (size, size));
        }
    }

    #[test]
    fn chat_pictures_fit_their_bounds_and_keep_their_shape() {
        let picture = chat_picture(&png(3000, 1500)).unwrap();
        assert_eq!((picture.width, picture.height), (2048, 1024));
        let thumb = image::load_from_memory(&picture.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
        let small = chat_picture(&png(40, 30)).unwrap();
        assert_eq!((small.width, small.height), (40, 30));
    }

    #[test]
    fn a_bomb_is_refused_from_its_header() {
        // A valid PNG header claiming 60 000 × 60 000, with almost no data.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            header(&bytes),
            Err(ImageError::TooLarge { width: 60_000, .. })
        ));
    }

    #[test]
    fn heic_and_strangers_are_refused_by_name() {
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(header(heic).unwrap_err(), ImageError::Heic);
        // An MP4 is `ftyp` too, but not an image.
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0isomiso2";
        assert_eq!(header(mp4).unwrap_err(), ImageError::Unsupported);
        assert_eq!(header(b"plain text").unwrap_err(), ImageError::Unsupported);
    }
}
