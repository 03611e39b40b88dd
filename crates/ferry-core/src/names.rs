//! Names as Dropbox sees them: how paths compare, which names it refuses, and the one
//! sanitiser every rendered path component goes through.

use unicode_normalization::UnicodeNormalization;

/// Longest path component Dropbox accepts, counted in UTF-16 units (Dropbox counts
/// characters outside the BMP as two).
pub const MAX_COMPONENT_UTF16: usize = 255;

/// Characters Windows clients cannot store, or that Dropbox refuses outright (`\`).
const FORBIDDEN: &[char] = &['\\', '/', '<', '>', ':', '"', '|', '?', '*'];

/// The key Dropbox uses to compare paths: NFC, then lower-cased one character at a time.
///
/// Per character on purpose: `str::to_lowercase` applies the final-sigma rule, Dropbox does not.
pub fn dropbox_lower(s: &str) -> String {
    s.nfc().flat_map(char::to_lowercase).collect()
}

/// Why a name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after sanitising.
    #[error("name is empty")]
    Empty,
    /// `.` and `..` would escape or alias a folder.
    #[error("name {0:?} is reserved")]
    Reserved(String),
    /// Longer than Dropbox allows for one component.
    #[error("name is longer than {MAX_COMPONENT_UTF16} characters")]
    TooLong,
    /// A character the attachment name may not contain.
    #[error("name contains a forbidden character {0:?}")]
    ForbiddenChar(char),
}

/// Checks a name an application gives to an attachment. Stricter than Dropbox on purpose:
/// these names become path components, so no separators, control characters or `.`/`..`.
pub fn validate_attachment_name(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved(name.to_owned()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_control())
    {
        return Err(NameError::ForbiddenChar(c));
    }
    if name.encode_utf16().count() > MAX_COMPONENT_UTF16 {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// Turns any string into a component Dropbox accepts and every desktop client can store:
/// NFC; forbidden, control and non-BMP characters become `_`; no leading or trailing
/// whitespace and no trailing dots; at most 255 UTF-16 units (the extension is kept when
/// cutting).
pub fn sanitize_component(raw: &str) -> Result<String, NameError> {
    let replaced: String = raw
        .nfc()
        .map(|c| {
            if FORBIDDEN.contains(&c) || c.is_control() || (c as u32) > 0xFFFF {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim().trim_end_matches(['.', ' ']).trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    if trimmed == "." || trimmed == ".." {
        return Err(NameError::Reserved(trimmed.to_owned()));
    }
    Ok(truncate_keeping_extension(trimmed))
}

fn truncate_keeping_extension(name: &str) -> String {
    if name.encode_utf16().count() <= MAX_COMPONENT_UTF16 {
        return name.to_owned();
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 && name.len() - i <= 16 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let budget = MAX_COMPONENT_UTF16 - ext.encode_utf16().count();
    let mut out = String::new();
    let mut used = 0;
    for c in stem.chars() {
        used += c.len_utf16();
        if used > budget {
            break;
        }
        out.push(c);
    }
    let out = out.trim_end_matches(['.', ' ']).to_owned();
    out + ext
}

/// Joins sanitised components under a root (`""` or `/Something`) into a Dropbox path.
pub fn join_path(root: &str, components: &[String]) -> String {
    let mut path = root.trim_end_matches('/').to_owned();
    for c in components {
        path.push('/');
        path.push_str(c);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_is_per_character_and_nfc() {
        assert_eq!(dropbox_lower("ΟΔΟΣ"), "οδοσ");
        assert_eq!(dropbox_lower("Cafe\u{301}"), "caf\u{e9}");
        assert_eq!(dropbox_lower("/A/b/C.txt"), "/a/b/c.txt");
    }

    #[test]
    fn sanitiser_replaces_and_trims() {
        assert_eq!(sanitize_component("a/b:c?.pdf").unwrap(), "a_b_c_.pdf");
        assert_eq!(sanitize_component("  name. . ").unwrap(), "name");
        assert_eq!(sanitize_component("smile 😀.png").unwrap(), "smile _.png");
        assert_eq!(sanitize_component(" ... "), Err(NameError::Empty));
        assert_eq!(sanitize_component(".."), Err(NameError::Empty));
        let long = format!("{}.pdf", "x".repeat(300));
        let cut = sanitize_component(&long).unwrap();
        assert_eq!(cut.encode_utf16().count(), 255);
        assert!(cut.ends_with(".pdf"));
    }

    #[test]
    fn attachment_names_are_checked() {
        assert!(validate_attachment_name("art work (v2).pdf").is_ok());
        assert!(validate_attachment_name("Ünïcödé 日本.txt").is_ok());
        assert_eq!(validate_attachment_name(""), Err(NameError::Empty));
        assert_eq!(validate_attachment_name("   "), Err(NameError::Empty));
        assert_eq!(
            validate_attachment_name("a/b"),
            Err(NameError::ForbiddenChar('/'))
        );
        assert_eq!(
            validate_attachment_name("a\nb"),
            Err(NameError::ForbiddenChar('\n'))
        );
        assert!(matches!(
            validate_attachment_name(".."),
            Err(NameError::Reserved(_))
        ));
        assert_eq!(
            validate_attachment_name(&"x".repeat(256)),
            Err(NameError::TooLong)
        );
    }

    proptest::proptest! {
        #[test]
        fn sanitised_components_are_always_acceptable(raw in ".{0,300}") {
            if let Ok(c) = sanitize_component(&raw) {
                proptest::prop_assert!(!c.is_empty());
                proptest::prop_assert!(c.encode_utf16().count() <= MAX_COMPONENT_UTF16);
                proptest::prop_assert!(!c.ends_with('.') && !c.ends_with(char::is_whitespace));
                proptest::prop_assert!(!c.starts_with(char::is_whitespace));
                proptest::prop_assert!(c.chars().all(|ch| !FORBIDDEN.contains(&ch) && !ch.is_control() && (ch as u32) <= 0xFFFF));
                let again = sanitize_component(&c);
                proptest::prop_assert_eq!(again.as_deref(), Ok(c.as_str()));
            }
        }
    }
}
