//! Client capability bits (`CEPH_CAP_*`, mds spec §3) and Ceph's cap strings.
//!
//! State tables speak in generic bits (`s x c r w b a l`); a client holds absolute bits, where
//! each cap-bearing lock's generic bits are shifted into its own range. The cap string
//! (`pAsLsXsFscr`) is what Ceph prints in logs and `session ls`, so being able to format and
//! parse it lets our logs and tests be compared with a real cluster's.

use core::fmt;

use crate::lock_type::LockType;

/// Absolute bit 0: the client may keep the inode in its cache. Never shifted.
pub const PIN: u32 = 1;

/// Generic `s`: may read the protected metadata.
pub const GSHARED: u32 = 1;
/// Generic `x`: may change the protected metadata locally.
pub const GEXCL: u32 = 2;
/// Generic `c`: may cache file data.
pub const GCACHE: u32 = 4;
/// Generic `r`: may read file data.
pub const GRD: u32 = 8;
/// Generic `w`: may write file data.
pub const GWR: u32 = 16;
/// Generic `b`: may buffer writes.
pub const GBUFFER: u32 = 32;
/// Generic `a`: may extend the file.
pub const GWREXTEND: u32 = 64;
/// Generic `l`: lazy I/O.
pub const GLAZYIO: u32 = 128;

/// Number of generic bits a simplelock uses (`s`, `x`).
pub const SIMPLE_BITS: u32 = 2;
/// Number of generic bits the filelock uses (all eight).
pub const FILE_BITS: u32 = 8;

/// Shift of the IAUTH bits (`A`).
pub const SAUTH: u32 = 2;
/// Shift of the ILINK bits (`L`).
pub const SLINK: u32 = 4;
/// Shift of the IXATTR bits (`X`).
pub const SXATTR: u32 = 6;
/// Shift of the IFILE bits (`F`).
pub const SFILE: u32 = 8;

/// `As`.
pub const AUTH_SHARED: u32 = GSHARED << SAUTH;
/// `Ax`.
pub const AUTH_EXCL: u32 = GEXCL << SAUTH;
/// `Ls`.
pub const LINK_SHARED: u32 = GSHARED << SLINK;
/// `Lx`.
pub const LINK_EXCL: u32 = GEXCL << SLINK;
/// `Xs`.
pub const XATTR_SHARED: u32 = GSHARED << SXATTR;
/// `Xx`.
pub const XATTR_EXCL: u32 = GEXCL << SXATTR;
/// `Fs`.
pub const FILE_SHARED: u32 = GSHARED << SFILE;
/// `Fx`.
pub const FILE_EXCL: u32 = GEXCL << SFILE;
/// `Fc`.
pub const FILE_CACHE: u32 = GCACHE << SFILE;
/// `Fr`.
pub const FILE_RD: u32 = GRD << SFILE;
/// `Fw`.
pub const FILE_WR: u32 = GWR << SFILE;
/// `Fb`.
pub const FILE_BUFFER: u32 = GBUFFER << SFILE;
/// `Fa`.
pub const FILE_WREXTEND: u32 = GWREXTEND << SFILE;
/// `Fl`.
pub const FILE_LAZYIO: u32 = GLAZYIO << SFILE;

/// Every shared bit: `As Ls Xs Fs`.
pub const ANY_SHARED: u32 = AUTH_SHARED | LINK_SHARED | XATTR_SHARED | FILE_SHARED;
/// Everything that lets a client read: shared bits plus `Fr Fc`.
pub const ANY_RD: u32 = ANY_SHARED | FILE_RD | FILE_CACHE;
/// Every exclusive bit: `Ax Lx Xx Fx`.
pub const ANY_EXCL: u32 = AUTH_EXCL | LINK_EXCL | XATTR_EXCL | FILE_EXCL;
/// File read bits: `Fr Fc Fs`.
pub const ANY_FILE_RD: u32 = FILE_RD | FILE_CACHE | FILE_SHARED;
/// File write bits: `Fw Fb Fx` (what a snapped inode waits on for snap flushes, §2.4).
pub const ANY_FILE_WR: u32 = FILE_WR | FILE_BUFFER | FILE_EXCL;
/// Every write bit.
pub const ANY_WR: u32 = ANY_EXCL | ANY_FILE_WR;
/// Ceph's `CEPH_CAP_ANY`; deliberately excludes `Fa` (§8 fact 30).
pub const ANY: u32 = ANY_RD | ANY_EXCL | ANY_FILE_WR | FILE_LAZYIO | PIN;
/// Async create on a directory is authorised by `Fc`.
pub const DIR_CREATE: u32 = FILE_CACHE;
/// Async unlink on a directory is authorised by `Fr`.
pub const DIR_UNLINK: u32 = FILE_RD;
/// Bits a directory only grants together with a lock cache (§3.3).
pub const ANY_DIR_OPS: u32 = FILE_CACHE | FILE_RD | FILE_WREXTEND | FILE_LAZYIO;
/// Getattr mask bit asking for recursive stats (reuses `Fa`).
pub const STAT_RSTAT: u32 = FILE_WREXTEND;

/// Open mode: no data access, pin only.
pub const FILE_MODE_PIN: u32 = 0;
/// Open mode bit: read.
pub const FILE_MODE_RD: u32 = 1;
/// Open mode bit: write.
pub const FILE_MODE_WR: u32 = 2;
/// Open mode: read and write.
pub const FILE_MODE_RDWR: u32 = 3;
/// Open mode bit: lazy I/O.
pub const FILE_MODE_LAZY: u32 = 4;

/// The caps an open in `mode` wants (§3.2), so open-file accounting can compute "wanted".
/// Mode bits are tested individually, as Ceph does; unknown bits are ignored.
pub const fn caps_for_mode(mode: u32) -> u32 {
    let mut caps = PIN;
    if mode & FILE_MODE_RD != 0 {
        caps |= FILE_SHARED | FILE_RD | FILE_CACHE;
    }
    if mode & FILE_MODE_WR != 0 {
        caps |= FILE_EXCL | FILE_WR | FILE_BUFFER | AUTH_SHARED | AUTH_EXCL | XATTR_SHARED | XATTR_EXCL;
    }
    if mode & FILE_MODE_LAZY != 0 {
        caps |= FILE_LAZYIO;
    }
    caps
}

/// Generic letters in Ceph's printing order (bit 0 first).
const GENERIC_LETTERS: [u8; 8] = *b"sxcrwbal";

/// Cap groups in printing order: letter, shift, generic mask.
const GROUPS: [(u8, u32, u32); 4] =
    [(b'A', SAUTH, 0x3), (b'L', SLINK, 0x3), (b'X', SXATTR, 0x3), (b'F', SFILE, 0xff)];

fn push_generic(out: &mut String, gcaps: u32) {
    for (bit, letter) in GENERIC_LETTERS.iter().enumerate() {
        if gcaps & (1 << bit) != 0 {
            out.push(*letter as char);
        }
    }
}

/// Formats absolute caps the way Ceph logs them: `p`, then the `A`, `L`, `X`, `F` groups, each
/// followed by its generic letters in `s x c r w b a l` order; `-` when nothing is set.
///
/// Bits outside Ceph's layout (absolute bit 1 and bits 16 and up) have no letter and are not
/// printed, as in Ceph, so only caps within `0xfffd` round-trip through `parse_caps`.
pub fn format_caps(caps: u32) -> String {
    let mut out = String::new();
    if caps & PIN != 0 {
        out.push('p');
    }
    for (letter, shift, mask) in GROUPS {
        let g = (caps >> shift) & mask;
        if g != 0 {
            out.push(letter as char);
            push_generic(&mut out, g);
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Formats generic caps as letters (`scrl` for 141); `-` for none. Bits above the eight generic
/// ones are not printed.
pub fn format_generic(gcaps: u32) -> String {
    let mut out = String::new();
    push_generic(&mut out, gcaps & 0xff);
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Why a cap string was rejected. Positions are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapParseError {
    /// The input was empty (no caps is written `-`).
    Empty,
    /// A character that is not a cap letter where it appeared.
    UnexpectedChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        pos: usize,
    },
    /// A group letter (`A`, `L`, `X`, `F`) with no generic letters after it.
    EmptyGroup {
        /// The group letter.
        group: char,
    },
    /// A group or `p` appeared twice.
    Duplicate {
        /// The repeated letter.
        letter: char,
    },
    /// A generic letter appeared twice in one group (or in a generic string).
    DuplicateLetter {
        /// The group letter, or `'-'` for a bare generic string.
        group: char,
        /// The repeated generic letter.
        letter: char,
    },
    /// A generic letter the group cannot carry (`A`, `L`, `X` carry only `s` and `x`).
    LetterNotInGroup {
        /// The group letter.
        group: char,
        /// The generic letter it cannot carry.
        letter: char,
    },
}

impl fmt::Display for CapParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapParseError::Empty => f.write_str("empty cap string (use \"-\" for no caps)"),
            CapParseError::UnexpectedChar { ch, pos } => {
                write!(f, "unexpected character {ch:?} at offset {pos}")
            }
            CapParseError::EmptyGroup { group } => write!(f, "cap group '{group}' has no letters"),
            CapParseError::Duplicate { letter } => write!(f, "'{letter}' appears more than once"),
            CapParseError::DuplicateLetter { group, letter } => {
                write!(f, "letter '{letter}' repeated in cap group '{group}'")
            }
            CapParseError::LetterNotInGroup { group, letter } => {
                write!(f, "cap group '{group}' cannot carry '{letter}' (only s and x)")
            }
        }
    }
}

impl std::error::Error for CapParseError {}

fn generic_bit(c: char) -> Option<u32> {
    GENERIC_LETTERS.iter().position(|l| *l as char == c).map(|i| 1u32 << i)
}

/// Parses a cap string produced by `format_caps` (or a hand-written one) back to absolute bits.
///
/// Accepted: `-` alone for no caps, or a sequence of `p` and groups (`A`, `L`, `X`, `F` each
/// followed by at least one generic letter). Order is not enforced, because humans write
/// `Fcb` as readily as `Fbc`, but nothing may repeat and `A`/`L`/`X` take only `s` and `x`, since
/// any other letter would spill into a neighbouring lock's bits.
pub fn parse_caps(s: &str) -> Result<u32, CapParseError> {
    if s.is_empty() {
        return Err(CapParseError::Empty);
    }
    if s == "-" {
        return Ok(0);
    }
    let mut caps = 0u32;
    let mut seen_top = 0u32; // bit 0: p, bits 1..=4: A L X F
    // The group being filled: (letter, shift, mask, generic bits so far).
    let mut group: Option<(char, u32, u32, u32)> = None;
    for (pos, ch) in s.char_indices() {
        if let Some((g, shift, mask, bits)) = group.as_mut()
            && let Some(bit) = generic_bit(ch)
        {
            if bit & *mask == 0 {
                return Err(CapParseError::LetterNotInGroup { group: *g, letter: ch });
            }
            if *bits & bit != 0 {
                return Err(CapParseError::DuplicateLetter { group: *g, letter: ch });
            }
            *bits |= bit;
            caps |= bit << *shift;
            continue;
        }
        // Not a generic letter for an open group: it must start something new.
        let top_bit = if ch == 'p' {
            1
        } else if let Some(i) = GROUPS.iter().position(|(l, _, _)| *l as char == ch) {
            2 << i
        } else {
            return Err(CapParseError::UnexpectedChar { ch, pos });
        };
        // ... and the open group (if any) ends here.
        if let Some((g, _, _, bits)) = group.take()
            && bits == 0
        {
            return Err(CapParseError::EmptyGroup { group: g });
        }
        if seen_top & top_bit != 0 {
            return Err(CapParseError::Duplicate { letter: ch });
        }
        seen_top |= top_bit;
        if ch == 'p' {
            caps |= PIN;
        } else if let Some((l, shift, mask)) = GROUPS.iter().find(|(l, _, _)| *l as char == ch) {
            group = Some((*l as char, *shift, *mask, 0));
        }
    }
    if let Some((g, _, _, 0)) = group {
        return Err(CapParseError::EmptyGroup { group: g });
    }
    Ok(caps)
}

/// Parses generic letters (`scrl`) back to bits; `-` for none. Any order, no repeats.
pub fn parse_generic(s: &str) -> Result<u32, CapParseError> {
    if s.is_empty() {
        return Err(CapParseError::Empty);
    }
    if s == "-" {
        return Ok(0);
    }
    let mut bits = 0u32;
    for (pos, ch) in s.char_indices() {
        let bit = generic_bit(ch).ok_or(CapParseError::UnexpectedChar { ch, pos })?;
        if bits & bit != 0 {
            return Err(CapParseError::DuplicateLetter { group: '-', letter: ch });
        }
        bits |= bit;
    }
    Ok(bits)
}

/// Places a lock's generic caps at its absolute position (`gcaps & cap_mask` shifted by
/// `cap_shift`). For locks that bear no caps (shift 0, see `LockType::is_cap_bearing`) the
/// result overlaps `PIN` and has no meaning for clients; callers only shift cap-bearing locks.
pub const fn shift_caps(gcaps: u32, lt: LockType) -> u32 {
    (gcaps & lt.cap_mask()) << lt.cap_shift()
}

/// The inverse of `shift_caps`: a lock's generic bits out of a client's absolute caps, as
/// `get_caps_issued` buckets them.
pub const fn unshift_caps(caps: u32, lt: LockType) -> u32 {
    (caps >> lt.cap_shift()) & lt.cap_mask()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_3_2_composed_values() {
        assert_eq!(
            [AUTH_SHARED, AUTH_EXCL, LINK_SHARED, LINK_EXCL, XATTR_SHARED, XATTR_EXCL],
            [4, 8, 16, 32, 64, 128]
        );
        assert_eq!(
            [FILE_SHARED, FILE_EXCL, FILE_CACHE, FILE_RD, FILE_WR, FILE_BUFFER, FILE_WREXTEND, FILE_LAZYIO],
            [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
        );
        assert_eq!(ANY_SHARED, 340);
        assert_eq!(ANY_RD, 3412);
        assert_eq!(ANY_EXCL, 680);
        assert_eq!(ANY_FILE_RD, 3328);
        assert_eq!(ANY_FILE_WR, 12800);
        assert_eq!(ANY_WR, 12968);
        assert_eq!(ANY, 49149); // fact 30: Fa excluded
        assert_eq!(ANY & FILE_WREXTEND, 0);
        assert_eq!(DIR_CREATE, 1024);
        assert_eq!(DIR_UNLINK, 2048);
        assert_eq!(ANY_DIR_OPS, 52224);
        assert_eq!(STAT_RSTAT, 16384);
    }

    #[test]
    fn caps_for_mode_section_3_2() {
        assert_eq!(caps_for_mode(FILE_MODE_PIN), PIN);
        assert_eq!(format_caps(caps_for_mode(FILE_MODE_RD)), "pFscr");
        assert_eq!(format_caps(caps_for_mode(FILE_MODE_WR)), "pAsxXsxFxwb");
        assert_eq!(format_caps(caps_for_mode(FILE_MODE_RDWR)), "pAsxXsxFsxcrwb");
        assert_eq!(caps_for_mode(FILE_MODE_LAZY), PIN | FILE_LAZYIO);
    }

    #[test]
    fn format_known_strings() {
        assert_eq!(format_caps(0), "-");
        assert_eq!(format_caps(PIN | AUTH_SHARED | LINK_SHARED | XATTR_SHARED | FILE_SHARED), "pAsLsXsFs");
        assert_eq!(format_caps(PIN | AUTH_SHARED | LINK_SHARED | XATTR_SHARED | ANY_FILE_RD), "pAsLsXsFscr");
        assert_eq!(format_caps(ANY), "pAsxLsxXsxFsxcrwbl");
        assert_eq!(format_generic(141), "scrl");
        assert_eq!(format_generic(63), "sxcrwb");
        assert_eq!(format_generic(0), "-");
        assert_eq!(format_generic(255), "sxcrwbal");
        // Bit 1 and bits above 15 have no letter.
        assert_eq!(format_caps(2), "-");
        assert_eq!(format_caps(1 << 16 | PIN), "p");
    }

    #[test]
    fn caps_round_trip_exhaustive_over_layout() {
        // Every value whose bits all have a letter: 0..=0xffff without bit 1.
        for caps in 0u32..=0xffff {
            if caps & 2 != 0 {
                continue;
            }
            let s = format_caps(caps);
            assert_eq!(parse_caps(&s), Ok(caps), "{caps:#x} -> {s}");
        }
    }

    #[test]
    fn generic_round_trip_exhaustive() {
        for g in 0u32..=0xff {
            assert_eq!(parse_generic(&format_generic(g)), Ok(g));
        }
    }

    #[test]
    fn parse_accepts_any_order() {
        assert_eq!(parse_caps("FbcAsp"), parse_caps("pAsFcb"));
        assert_eq!(parse_generic("lrcs"), Ok(141));
    }

    #[test]
    fn parse_rejects_garbage() {
        let bad = [
            ("", CapParseError::Empty),
            ("--", CapParseError::UnexpectedChar { ch: '-', pos: 0 }),
            ("pA", CapParseError::EmptyGroup { group: 'A' }),
            ("AFs", CapParseError::EmptyGroup { group: 'A' }),
            ("Ac", CapParseError::LetterNotInGroup { group: 'A', letter: 'c' }),
            ("Fss", CapParseError::DuplicateLetter { group: 'F', letter: 's' }),
            ("pp", CapParseError::Duplicate { letter: 'p' }),
            ("AsAx", CapParseError::Duplicate { letter: 'A' }),
            ("s", CapParseError::UnexpectedChar { ch: 's', pos: 0 }),
            ("pAs ", CapParseError::UnexpectedChar { ch: ' ', pos: 3 }),
            ("pAsé", CapParseError::UnexpectedChar { ch: 'é', pos: 3 }),
            ("Fz", CapParseError::UnexpectedChar { ch: 'z', pos: 1 }),
        ];
        for (input, err) in bad {
            assert_eq!(parse_caps(input), Err(err), "{input:?}");
        }
        assert!(parse_generic("").is_err());
        assert!(parse_generic("sP").is_err());
        assert!(parse_generic("ss").is_err());
        assert!(parse_generic("s-").is_err());
        assert!(!CapParseError::Empty.to_string().is_empty());
    }

    #[test]
    fn parse_never_panics_on_sampled_garbage() {
        // A deterministic sample of short strings over an alphabet of valid and invalid chars.
        let alphabet: Vec<char> = "pALXFsxcrwbal-zé ".chars().collect();
        let n = alphabet.len();
        for i in 0..n * n * n {
            let s: String = [alphabet[i % n], alphabet[(i / n) % n], alphabet[i / (n * n)]].iter().collect();
            if let Ok(caps) = parse_caps(&s) {
                assert_eq!(parse_caps(&format_caps(caps)), Ok(caps));
            }
            let _ = parse_generic(&s);
        }
    }

    #[test]
    fn shift_caps_places_bits_per_fact_31() {
        assert_eq!(shift_caps(GSHARED, LockType::IAuth), AUTH_SHARED);
        assert_eq!(shift_caps(GEXCL, LockType::ILink), LINK_EXCL);
        assert_eq!(shift_caps(GSHARED | GEXCL | GCACHE, LockType::IXattr), XATTR_SHARED | XATTR_EXCL);
        assert_eq!(shift_caps(141, LockType::IFile), FILE_SHARED | FILE_CACHE | FILE_RD | FILE_LAZYIO);
        for t in LockType::ALL {
            for g in 0..=0xffu32 {
                assert_eq!(unshift_caps(shift_caps(g, t), t), g & t.cap_mask());
            }
        }
    }
}
