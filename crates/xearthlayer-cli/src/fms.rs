//! X-Plane's `.fms` flight plan files (what SimBrief and the FMS export), in
//! both versions X-Plane reads: 3 (`I`, `3 version`, a cycle line, the leg
//! count, then `type ident alt lat lon` rows) and 1100 (`I`, `1100 Version`,
//! keyed lines up to `NUMENR n`, then `type ident via alt lat lon` rows).
//! Only the waypoints' positions matter to prefetch, in route order.

use std::path::Path;

/// One waypoint of a flight plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Waypoint {
    pub ident: String,
    pub lat: f64,
    pub lon: f64,
}

/// Reads and parses a `.fms` file; errors name the file and line.
pub fn read(path: &Path) -> Result<Vec<Waypoint>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(&text).map_err(|(line, what)| format!("{}:{line}: {what}", path.display()))
}

/// The waypoints of a flight plan, or the 1-based line and what is wrong.
pub fn parse(text: &str) -> Result<Vec<Waypoint>, (usize, String)> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (n, origin) = lines
        .next()
        .ok_or((1, "empty file, not a flight plan".to_string()))?;
    if origin != "I" && origin != "A" {
        return Err((n, format!("{origin:?}: a .fms file starts with `I`")));
    }
    let (n, version_line) = lines.next().ok_or((n, "no version line".to_string()))?;
    let version = version_line.split_whitespace().next().unwrap_or("");
    let expected = match version {
        "1100" => loop {
            let (n, line) = lines.next().ok_or((n, "no `NUMENR` line".to_string()))?;
            if let Some(count) = line.strip_prefix("NUMENR") {
                break count
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| (n, format!("{line:?}: NUMENR needs a waypoint count")))?;
            }
        },
        "3" => {
            // A cycle line, then the number of legs: one less than the waypoints.
            lines.next().ok_or((n, "no cycle line".to_string()))?;
            let (n, legs) = lines.next().ok_or((n, "no leg count".to_string()))?;
            legs.parse::<usize>()
                .map_err(|_| (n, format!("{legs:?}: expected the number of legs")))?
                + 1
        }
        other => {
            return Err((
                n,
                format!("version {other:?}: only .fms versions 3 and 1100 are read"),
            ))
        }
    };
    let mut route = Vec::with_capacity(expected.min(1024));
    for (n, line) in lines {
        if route.len() == expected {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Version 3 may end with a `0 ---- 0 0.000000 0.000000` terminator.
        if fields.first() == Some(&"0") {
            break;
        }
        route.push(waypoint(&fields).map_err(|what| (n, format!("{line:?}: {what}")))?);
    }
    if route.len() < expected {
        return Err((
            text.lines().count(),
            format!("{} waypoints where the header says {expected}", route.len()),
        ));
    }
    if route.is_empty() {
        return Err((text.lines().count(), "no waypoints".to_string()));
    }
    Ok(route)
}

/// A waypoint row: a numeric type, an ident, and latitude and longitude last.
fn waypoint(fields: &[&str]) -> Result<Waypoint, String> {
    if fields.len() < 5 || fields[0].parse::<u32>().is_err() {
        return Err("expected `type ident ... lat lon`".to_string());
    }
    let number = |s: &str| {
        s.parse::<f64>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let lat = number(fields[fields.len() - 2])?;
    let lon = number(fields[fields.len() - 1])?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("{lat}, {lon} is not a position on Earth"));
    }
    Ok(Waypoint {
        ident: fields[1].to_string(),
        lat,
        lon,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As X-Plane 11's FMS and SimBrief write version 1100.
    const V1100: &str = "I\r\n1100 Version\r\nCYCLE 2313\r\nADEP LFRB\r\nDEPRWY RW25L\r\n\
        ADES LFRN\r\nDESRWY RW28\r\nNUMENR 4\r\n\
        1 LFRB ADEP 325.000000 48.447911 -4.418539\r\n\
        11 BODAK DCT 8000.000000 48.300000 -3.500000\r\n\
        3 RNE UN866 12000.000000 48.070000 -1.720000\r\n\
        1 LFRN ADES 124.000000 48.069508 -1.734794\r\n";

    /// As X-Plane 10 writes version 3, with its terminator row.
    const V3: &str = "I\n3 version\n1\n2\n\
        1 LFRB 0.000000 48.447911 -4.418539\n\
        28 +48.300_-003.500 0.000000 48.300000 -3.500000\n\
        1 LFRN 0.000000 48.069508 -1.734794\n\
        0 ---- 0 0.000000 0.000000\n";

    #[test]
    fn reads_version_1100() {
        let route = parse(V1100).unwrap();
        let idents: Vec<&str> = route.iter().map(|w| w.ident.as_str()).collect();
        assert_eq!(idents, ["LFRB", "BODAK", "RNE", "LFRN"]);
        assert_eq!((route[0].lat, route[0].lon), (48.447911, -4.418539));
        assert_eq!((route[3].lat, route[3].lon), (48.069508, -1.734794));
    }

    #[test]
    fn reads_version_3() {
        let route = parse(V3).unwrap();
        assert_eq!(route.len(), 3);
        assert_eq!(route[1].ident, "+48.300_-003.500");
        assert_eq!((route[1].lat, route[1].lon), (48.3, -3.5));
    }

    #[test]
    fn errors_name_the_line() {
        let bad_lat = V1100.replace("48.300000 -3.500000", "north -3.500000");
        assert_eq!(parse(&bad_lat).unwrap_err().0, 10);
        let off_earth = V3.replace("48.300000 -3.500000", "98.3 -3.5");
        let (line, what) = parse(&off_earth).unwrap_err();
        assert_eq!(line, 6, "{what}");
        assert!(what.contains("not a position"), "{what}");
        let short = V1100.replace("NUMENR 4", "NUMENR 5");
        assert!(parse(&short)
            .unwrap_err()
            .1
            .contains("4 waypoints where the header says 5"));
        assert!(parse("I\n900 Version\n").unwrap_err().1.contains("900"));
        assert_eq!(parse("<html>").unwrap_err().0, 1);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.fms");
        std::fs::write(&file, &bad_lat).unwrap();
        let message = read(&file).unwrap_err();
        assert!(
            message.starts_with(&format!("{}:10: ", file.display())),
            "{message}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Fuzz: any flight plan text, random or near-valid, parses or says
        /// which line is wrong; never a panic.
        #[test]
        fn fuzz_flight_plans(
            noise in "\\PC{0,300}",
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "[0-9]{1,5} \\PC{0,8} [0-9]{0,6} [-+0-9.eE]{0,12} [-+0-9.eEnaif]{0,12}",
                    "(I|A|1100 Version|3 version|NUMENR [0-9]{0,4}|CYCLE [0-9]{0,5})",
                ],
                0..10,
            ),
        ) {
            let text = format!("I\n1100 Version\n{}\n{noise}", lines.join("\n"));
            if let Ok(waypoints) = parse(&text) {
                for w in waypoints {
                    proptest::prop_assert!(w.lat.is_finite() && w.lon.is_finite());
                }
            }
            let _ = parse(&noise);
        }
    }
}
