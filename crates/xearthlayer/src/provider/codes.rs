//! Which built-in provider a texture name's code stands for: the codes
//! Ortho4XP writes for the sources we serve ourselves. Codes are the names
//! of Ortho4XP's provider files, so they are matched exactly (`Arc` and
//! `ARC` are both ArcGIS; `Arc@` is another of its sources, not mapped).

use super::ProviderKind;

/// The built-in that serves `code`'s imagery, if any.
pub fn built_in_for_code(code: &str) -> Option<ProviderKind> {
    Some(match code {
        "BI" => ProviderKind::Bing,
        "GO" | "GO2" => ProviderKind::Go2,
        "ARC" | "Arc" => ProviderKind::Arcgis,
        "EOX" => ProviderKind::Eox,
        "USGS" => ProviderKind::Usgs,
        "FIREFLY" => ProviderKind::Firefly,
        "NAIP" => ProviderKind::Naip,
        // Ortho4XP's 48 state codes: CA_NAIP, TX_NAIP, ...
        _ if code.len() > 5 && code.ends_with("_NAIP") => ProviderKind::Naip,
        _ => return None,
    })
}

/// Whether `code` could be a code in a texture name (what a configuration
/// may map): what [`crate::coord::TextureId::parse`] accepts, not empty.
pub fn is_valid_code(code: &str) -> bool {
    !code.is_empty()
        && !code
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ortho4xp_codes_map_to_their_sources() {
        for (code, kind) in [
            ("BI", Some(ProviderKind::Bing)),
            ("GO2", Some(ProviderKind::Go2)),
            ("GO", Some(ProviderKind::Go2)),
            ("ARC", Some(ProviderKind::Arcgis)),
            ("Arc", Some(ProviderKind::Arcgis)),
            ("EOX", Some(ProviderKind::Eox)),
            ("USGS", Some(ProviderKind::Usgs)),
            ("FIREFLY", Some(ProviderKind::Firefly)),
            ("CA_NAIP", Some(ProviderKind::Naip)),
            ("TX_NAIP", Some(ProviderKind::Naip)),
            ("NAIP", Some(ProviderKind::Naip)),
            ("_NAIP", None),
            ("Arc@", None),
            ("DOP40", None),
            ("FR2010_", None),
            ("CH_ZH", None),
            ("SLO_2009_2011", None),
            ("bi", None),
            ("", None),
        ] {
            assert_eq!(built_in_for_code(code), kind, "{code}");
        }
        assert!(is_valid_code("Arc@") && is_valid_code("FR2010_"));
        assert!(!is_valid_code("") && !is_valid_code("A B") && !is_valid_code("a/b"));
    }
}
