//! Pixel size of an uploaded image, read from the first bytes of the file:
//! PNG's IHDR, JPEG's start-of-frame marker, WebP's VP8/VP8L/VP8X header and
//! HEIC's `ispe` property. Enough to lay out a chat bubble; the format found
//! must match the declared type, so a mislabelled upload is refused.

/// Bytes read from the start of an upload: JPEG's frame header follows the
/// EXIF block, which phones keep under 64 KiB; HEIC's `meta` box comes first.
pub const HEADER_BYTES: u64 = 256 * 1024;

/// The type an image's bytes show, and its width and height when found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub content_type: &'static str,
    pub size: Option<(u32, u32)>,
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// Recognizes the format by its magic bytes; `None` for anything else.
pub fn probe(b: &[u8]) -> Option<Probe> {
    let (content_type, size) = if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        ("image/png", png(b))
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ("image/jpeg", jpeg(b))
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        ("image/webp", webp(b))
    } else if b.get(4..8) == Some(b"ftyp") {
        ("image/heic", heic(b))
    } else {
        return None;
    };
    Some(Probe { content_type, size })
}

fn png(b: &[u8]) -> Option<(u32, u32)> {
    (b.get(12..16)? == b"IHDR").then_some(())?;
    Some((be32(b, 16)?, be32(b, 20)?))
}

/// Walks the marker segments to the first start-of-frame (SOF0–SOF15 but
/// DHT, JPG and DAC, which share the range).
fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *b.get(at)? != 0xFF {
            at += 1;
        }
        while *b.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *b.get(at)?;
        at += 1;
        if matches!(marker, 0xD0..=0xD9 | 0x01) {
            continue;
        }
        let len = be16(b, at)? as usize;
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return Some((be16(b, at + 5)?, be16(b, at + 3)?));
        }
        at += len;
    }
}

fn webp(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
        b"VP8L" => {
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

/// The first `ispe` (image spatial extent) property: the primary image's size
/// in files phones write.
fn heic(b: &[u8]) -> Option<(u32, u32)> {
    let at = b.windows(4).position(|w| w == b"ispe")?;
    // box type, then version and flags (4 bytes), then width and height.
    Some((be32(b, at + 8)?, be32(b, at + 12)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_size_comes_from_ihdr() {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&640u32.to_be_bytes());
        b.extend_from_slice(&480u32.to_be_bytes());
        let p = probe(&b).unwrap();
        assert_eq!((p.content_type, p.size), ("image/png", Some((640, 480))));
    }

    #[test]
    fn jpeg_size_comes_from_the_frame_after_app_segments() {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 1, 2, 3, 4];
        b.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x03, 9]);
        b.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 8, 0x01, 0xE0, 0x02, 0x80, 3]);
        let p = probe(&b).unwrap();
        assert_eq!((p.content_type, p.size), ("image/jpeg", Some((640, 480))));
    }

    #[test]
    fn webp_variants_and_heic() {
        let mut x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        x.extend_from_slice(&[0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00]);
        assert_eq!(probe(&x).unwrap().size, Some((640, 480)));
        let mut l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        let bits: u32 = 639 | (479 << 14);
        l.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(probe(&l).unwrap().size, Some((640, 480)));
        let mut h = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        h.extend_from_slice(b"\0\0\0\x14ispe\0\0\0\0");
        h.extend_from_slice(&4032u32.to_be_bytes());
        h.extend_from_slice(&3024u32.to_be_bytes());
        let p = probe(&h).unwrap();
        assert_eq!((p.content_type, p.size), ("image/heic", Some((4032, 3024))));
    }

    #[test]
    fn other_bytes_are_not_images() {
        assert!(probe(b"OggS\0\x02").is_none());
        assert!(probe(b"").is_none());
        assert_eq!(probe(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap().size, None);
    }
}
