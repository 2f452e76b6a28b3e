//! What symphonia 0.5's MP4 reader does not do for us, read straight from the
//! atoms: the edit list (`elst`) that says how many priming samples an AAC
//! encoder put at the start and how long the audio really is (without it,
//! every AAC upload gains ~1024 samples of silence and its padding), and the
//! repair of a truncated file whose `mdat` claims more bytes than exist
//! (symphonia fails to open such a file; we shrink the atom in a byte overlay
//! so the samples that are there still decode), and a check that the sample
//! tables hold the entries they claim: symphonia reserves memory for the
//! claimed count before reading (`Vec::with_capacity`), so a 500-byte file
//! claiming 4 billion chunk offsets would make it allocate 16 GB.

use std::io::{self, Read, Seek, SeekFrom};

/// Most atoms walked per level (bounds the work on hostile files).
const MAX_ATOMS: usize = 4096;

/// The first non-empty edit of the first sound track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    /// Media time where the presentation starts, in `media_timescale` units.
    pub media_time: u64,
    pub media_timescale: u32,
    /// Presented duration in `movie_timescale` units (0: to the end).
    pub segment_duration: u64,
    pub movie_timescale: u32,
}

impl Edit {
    /// Frames to drop at the start, at the decoded rate.
    pub fn skip_frames(&self, rate: u32) -> u64 {
        scale(self.media_time, rate, self.media_timescale)
    }

    /// Frames to keep in total, at the decoded rate (`None`: all).
    pub fn keep_frames(&self, rate: u32) -> Option<u64> {
        (self.segment_duration > 0)
            .then(|| scale(self.segment_duration, rate, self.movie_timescale))
    }
}

fn scale(value: u64, rate: u32, timescale: u32) -> u64 {
    if timescale == 0 {
        return 0;
    }
    let scaled = u128::from(value) * u128::from(rate) / u128::from(timescale);
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// What the atom walk found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub edit: Option<Edit>,
    /// Bytes to overlay at an offset: a corrected size for a top-level atom
    /// that runs past the end of the file.
    pub size_patch: Option<(u64, Vec<u8>)>,
    /// Why symphonia must not see this file: a sample table claiming more
    /// entries than its atom holds, or a track timescale of 0 (a division
    /// by zero in symphonia).
    pub refusal: Option<String>,
}

/// Sample-table atoms symphonia sizes its buffers from: (kind, bytes before
/// the entries, bytes per entry). `stsz` lists sizes only when its fixed
/// sample size (the 4 bytes before the count) is 0.
const TABLES: [(&[u8; 4], u64, u64); 5] = [
    (b"stco", 8, 4),
    (b"co64", 8, 8),
    (b"stsc", 8, 12),
    (b"stts", 8, 8),
    (b"stsz", 12, 4),
];

#[derive(Clone, Copy)]
struct Atom {
    kind: [u8; 4],
    /// Offset of the atom's first byte.
    start: u64,
    /// Offset of the payload (after the header).
    body: u64,
    /// Exclusive end as claimed by the header.
    end: u64,
    /// Header used a 64-bit size.
    large: bool,
}

fn read_atom<R: Read + Seek>(r: &mut R, start: u64, limit: u64) -> io::Result<Option<Atom>> {
    if start.saturating_add(8) > limit {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(start))?;
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (size, body, large) = match size32 {
        0 => (limit - start, start + 8, false),
        1 => {
            let mut big = [0u8; 8];
            r.read_exact(&mut big)?;
            (u64::from_be_bytes(big), start + 16, true)
        }
        n => (u64::from(n), start + 8, false),
    };
    if size < body - start {
        return Ok(None);
    }
    Ok(Some(Atom {
        kind,
        start,
        body,
        end: start.saturating_add(size),
        large,
    }))
}

fn children<R: Read + Seek>(r: &mut R, parent: &Atom, len: u64) -> io::Result<Vec<Atom>> {
    let mut out = Vec::new();
    let end = parent.end.min(len);
    let mut pos = parent.body;
    while out.len() < MAX_ATOMS {
        let Some(atom) = read_atom(r, pos, end)? else {
            break;
        };
        out.push(atom);
        pos = atom.end;
    }
    Ok(out)
}

fn read_at<R: Read + Seek>(r: &mut R, pos: u64, buf: &mut [u8]) -> io::Result<()> {
    r.seek(SeekFrom::Start(pos))?;
    r.read_exact(buf)
}

/// Timescale of an `mvhd` or `mdhd` full box.
fn timescale<R: Read + Seek>(r: &mut R, atom: &Atom) -> io::Result<u32> {
    let mut version = [0u8; 1];
    read_at(r, atom.body, &mut version)?;
    let offset = if version[0] == 1 { 4 + 16 } else { 4 + 8 };
    let mut ts = [0u8; 4];
    read_at(r, atom.body + offset, &mut ts)?;
    Ok(u32::from_be_bytes(ts))
}

/// First non-empty entry of an `elst`: (segment_duration, media_time).
fn first_edit<R: Read + Seek>(r: &mut R, atom: &Atom) -> io::Result<Option<(u64, u64)>> {
    let mut head = [0u8; 8];
    read_at(r, atom.body, &mut head)?;
    let v1 = head[0] == 1;
    let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]).min(64);
    let entry_len = if v1 { 20 } else { 12 };
    for i in 0..u64::from(count) {
        let mut e = [0u8; 20];
        read_at(
            r,
            atom.body + 8 + i * entry_len,
            &mut e[..entry_len as usize],
        )?;
        let (duration, media_time) = if v1 {
            let d = u64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
            let t = i64::from_be_bytes([e[8], e[9], e[10], e[11], e[12], e[13], e[14], e[15]]);
            (d, t)
        } else {
            let d = u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            let t = i64::from(i32::from_be_bytes([e[4], e[5], e[6], e[7]]));
            (d, t)
        };
        if let Ok(start) = u64::try_from(media_time) {
            return Ok(Some((duration, start)));
        }
    }
    Ok(None)
}

fn find<'a>(atoms: &'a [Atom], kind: &[u8; 4]) -> Option<&'a Atom> {
    atoms.iter().find(|a| &a.kind == kind)
}

/// The edit of the first `trak` whose handler is `soun`.
fn sound_edit<R: Read + Seek>(r: &mut R, moov: &Atom, len: u64) -> io::Result<Option<Edit>> {
    let kids = children(r, moov, len)?;
    let Some(mvhd) = find(&kids, b"mvhd") else {
        return Ok(None);
    };
    let movie_timescale = timescale(r, mvhd)?;
    for trak in kids.iter().filter(|a| &a.kind == b"trak") {
        let parts = children(r, trak, len)?;
        let Some(mdia) = find(&parts, b"mdia") else {
            continue;
        };
        let media = children(r, mdia, len)?;
        let (Some(hdlr), Some(mdhd)) = (find(&media, b"hdlr"), find(&media, b"mdhd")) else {
            continue;
        };
        let mut handler = [0u8; 4];
        read_at(r, hdlr.body + 8, &mut handler)?;
        if &handler != b"soun" {
            continue;
        }
        let media_timescale = timescale(r, mdhd)?;
        let elst = match find(&parts, b"edts") {
            Some(edts) => find(&children(r, edts, len)?, b"elst").copied(),
            None => None,
        };
        let Some(elst) = elst else {
            return Ok(None);
        };
        return Ok(
            first_edit(r, &elst)?.map(|(segment_duration, media_time)| Edit {
                media_time,
                media_timescale,
                segment_duration,
                movie_timescale,
            }),
        );
    }
    Ok(None)
}

/// Walks the top-level atoms of a seekable MP4 of `len` bytes. Leaves the
/// reader position undefined (the caller rewinds).
pub(crate) fn scan<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let mut pos = 0;
    for _ in 0..MAX_ATOMS {
        let Some(atom) = read_atom(r, pos, len)? else {
            break;
        };
        if &atom.kind == b"moov" {
            scan.refusal = refusal(r, &atom, len)?;
            if atom.end <= len {
                // An unreadable edit list only costs the trim, never the file.
                scan.edit = sound_edit(r, &atom, len).ok().flatten();
            }
        }
        if atom.end > len {
            scan.size_patch = shrink(&atom, len);
            break;
        }
        pos = atom.end;
    }
    Ok(scan)
}

/// The first track with a media timescale of 0, or sample table whose entry
/// count needs more bytes than its atom has in the file, described for the user.
fn refusal<R: Read + Seek>(r: &mut R, moov: &Atom, len: u64) -> io::Result<Option<String>> {
    for trak in children(r, moov, len)?
        .iter()
        .filter(|a| &a.kind == b"trak")
    {
        let path = [b"mdia", b"minf", b"stbl"];
        let mut level = children(r, trak, len)?;
        for kind in path {
            let Some(next) = level.iter().find(|a| &a.kind == kind).copied() else {
                level.clear();
                break;
            };
            level = children(r, &next, len)?;
            if let Some(mdhd) = find(&level, b"mdhd").filter(|_| kind == b"mdia") {
                if timescale(r, mdhd)? == 0 {
                    return Ok(Some("MP4 track with a timescale of 0".into()));
                }
            }
        }
        for atom in &level {
            if let Some(reason) = oversized_table(r, atom, len)? {
                return Ok(Some(reason));
            }
        }
    }
    Ok(None)
}

/// The reason to refuse `atom` if it is a sample table whose entry count
/// needs more bytes than the atom has in the file.
fn oversized_table<R: Read + Seek>(r: &mut R, atom: &Atom, len: u64) -> io::Result<Option<String>> {
    let Some(&(kind, head, entry)) = TABLES.iter().find(|t| t.0 == &atom.kind) else {
        return Ok(None);
    };
    let available = atom.end.min(len).saturating_sub(atom.body);
    if available < head {
        return Ok(Some(table_reason(kind, None, available)));
    }
    let mut fields = [0u8; 12];
    read_at(r, atom.body, &mut fields[..head as usize])?;
    let at = head as usize - 4;
    let count = u32::from_be_bytes([fields[at], fields[at + 1], fields[at + 2], fields[at + 3]]);
    let fixed_size = kind == b"stsz" && fields[4..8] != [0; 4];
    let needed = if fixed_size {
        0
    } else {
        u64::from(count) * entry
    };
    Ok((needed > available - head).then(|| table_reason(kind, Some(count), available - head)))
}

fn table_reason(kind: &[u8; 4], count: Option<u32>, room: u64) -> String {
    let name = String::from_utf8_lossy(kind);
    match count {
        Some(count) => format!(
            "MP4 sample table `{name}` claims {count} entries but has room for {room} bytes"
        ),
        None => format!("MP4 sample table `{name}` is cut short"),
    }
}

/// Header bytes that make `atom` end exactly at `len` (only for `mdat`, the
/// atom a truncated upload loses the end of).
fn shrink(atom: &Atom, len: u64) -> Option<(u64, Vec<u8>)> {
    if &atom.kind != b"mdat" {
        return None;
    }
    let size = len - atom.start;
    if atom.large {
        Some((atom.start + 8, size.to_be_bytes().to_vec()))
    } else {
        let size = u32::try_from(size).ok()?;
        Some((atom.start, size.to_be_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn atom(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn full(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(body);
        atom(kind, &b)
    }

    #[test]
    fn finds_the_sound_edit_and_patches_a_short_mdat() {
        let mut ts = vec![0u8; 8];
        ts.extend_from_slice(&1000u32.to_be_bytes());
        ts.extend_from_slice(&[0; 4]);
        let mvhd = full(b"mvhd", &ts);
        let mut mts = vec![0u8; 8];
        mts.extend_from_slice(&16000u32.to_be_bytes());
        mts.extend_from_slice(&[0; 4]);
        let mdhd = full(b"mdhd", &mts);
        let hdlr = full(b"hdlr", b"\0\0\0\0soun\0\0\0\0");
        let mut elst_body = 1u32.to_be_bytes().to_vec();
        elst_body.extend_from_slice(&4347u32.to_be_bytes());
        elst_body.extend_from_slice(&1024i32.to_be_bytes());
        elst_body.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let edts = atom(b"edts", &full(b"elst", &elst_body));
        let mdia = atom(b"mdia", &[mdhd, hdlr].concat());
        let trak = atom(b"trak", &[edts, mdia].concat());
        let moov = atom(b"moov", &[mvhd, trak].concat());
        let mut file = atom(b"ftyp", b"M4A ");
        file.extend_from_slice(&moov);
        let mdat_at = file.len() as u64;
        file.extend_from_slice(&10_000u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&[0; 100]);
        let len = file.len() as u64;
        let scan = scan(&mut Cursor::new(file), len).unwrap_or_default();
        let edit = scan.edit.unwrap_or_else(|| panic!("no edit found"));
        assert_eq!(edit.skip_frames(16_000), 1024);
        assert_eq!(edit.keep_frames(16_000), Some(69_552));
        assert_eq!(
            scan.size_patch,
            Some((mdat_at, 108u32.to_be_bytes().to_vec()))
        );
    }
}
