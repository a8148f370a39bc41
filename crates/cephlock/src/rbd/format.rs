//! Argument parsing and output formatting shared by the `rbd` commands. Pure functions, so they
//! are tested in every build, with or without the `ceph` feature.

// The output helpers are only called by the live commands; without the feature they are still
// compiled (and unit-tested) so the formats cannot rot.
#![cfg_attr(not(feature = "ceph"), allow(dead_code))]

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// Parses a size the way the `rbd` tool's `--size` does: a number with an optional binary
/// suffix (`K`, `M`, `G`, `T`, optionally followed by `iB`/`B`); a bare number means MiB.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    parse_with_default_unit(s, MIB)
}

/// Parses an I/O size: like [`parse_size`], but a bare number means bytes (as `rbd bench
/// --io-size`). Must be positive and at most 64 MiB.
pub(crate) fn parse_io_size(s: &str) -> Result<u64, String> {
    let v = parse_with_default_unit(s, 1)?;
    if v == 0 || v > 64 * MIB {
        return Err(format!("{s:?}: the I/O size must be between 1 byte and 64 MiB"));
    }
    Ok(v)
}

fn parse_with_default_unit(s: &str, bare: u64) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (e.g. 64M, 1G, 4096B)"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" => bare,
        "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => MIB,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use B, K, M, G or T)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a number of seconds in (0, 86400].
pub(crate) fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(format!("{s:?} must be more than 0 and at most 86400 seconds"));
    }
    Ok(v)
}

/// Splits `IMAGE@SNAP`; both parts must be non-empty.
pub(crate) fn parse_image_snap(s: &str) -> Result<(String, String), String> {
    match s.split_once('@') {
        Some((img, snap)) if !img.is_empty() && !snap.is_empty() && !snap.contains('@') => {
            Ok((img.to_owned(), snap.to_owned()))
        }
        _ => Err(format!("{s:?} is not IMAGE@SNAP")),
    }
}

/// Formats bytes as the `rbd` tool does (`64 MiB`, `4 KiB`, `1.5 GiB`, `512 B`).
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut idx = 0;
    let mut div = 1u64;
    while idx + 1 < UNITS.len() && n / div >= 1024 {
        div <<= 10;
        idx += 1;
    }
    if n.is_multiple_of(div) {
        format!("{} {}", n / div, UNITS[idx])
    } else {
        let v = n as f64 / div as f64;
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s} {}", UNITS[idx])
    }
}

/// Feature names in bit order, as `rbd info` prints them.
const FEATURE_NAMES: [(u64, &str); 11] = [
    (1 << 0, "layering"),
    (1 << 1, "striping"),
    (1 << 2, "exclusive-lock"),
    (1 << 3, "object-map"),
    (1 << 4, "fast-diff"),
    (1 << 5, "deep-flatten"),
    (1 << 6, "journaling"),
    (1 << 7, "data-pool"),
    (1 << 8, "operations"),
    (1 << 9, "migrating"),
    (1 << 10, "non-primary"),
];

/// The names of the set feature bits (unknown bits as hex), in bit order.
pub(crate) fn feature_names(features: u64) -> Vec<String> {
    let mut names: Vec<String> =
        FEATURE_NAMES.iter().filter(|(b, _)| features & b != 0).map(|(_, n)| (*n).to_owned()).collect();
    let known = FEATURE_NAMES.iter().fold(0, |acc, (b, _)| acc | b);
    if features & !known != 0 {
        names.push(format!("{:#x}", features & !known));
    }
    names
}

/// Lays out rows under headers with two spaces between columns, as the `rbd` tool's tables.
/// Columns listed in `right` are right-aligned (numbers).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            let w = widths[i];
            if right.contains(&i) {
                s.push_str(&format!("{c:>w$}"));
            } else if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}"));
            }
            if i + 1 < n {
                s.push_str("  ");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_rbd_tool() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64"), Ok(64 << 20), "a bare --size is MiB");
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
        assert!(parse_size("99999999999999T").is_err());
        assert_eq!(parse_io_size("4K"), Ok(4096));
        assert_eq!(parse_io_size("512"), Ok(512), "a bare --io-size is bytes");
        assert!(parse_io_size("0").is_err());
    }

    #[test]
    fn image_snap_specs() {
        assert_eq!(parse_image_snap("img@s1"), Ok(("img".into(), "s1".into())));
        assert!(parse_image_snap("img").is_err());
        assert!(parse_image_snap("@s").is_err());
        assert!(parse_image_snap("img@").is_err());
        assert!(parse_image_snap("a@b@c").is_err());
    }

    #[test]
    fn byte_formatting_matches_rbd_info() {
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(4 << 20), "4 MiB");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn features_print_in_bit_order() {
        assert_eq!(feature_names(5), vec!["layering", "exclusive-lock"]);
        assert_eq!(feature_names(1 << 20 | 1), vec!["layering".to_owned(), "0x100000".to_owned()]);
        assert!(feature_names(0).is_empty());
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["SNAPID", "NAME", "SIZE"], &[vec!["4".into(), "s1".into(), "64 MiB".into()]], &[0]);
        assert_eq!(t, "SNAPID  NAME  SIZE\n     4  s1    64 MiB\n");
    }
}
