//! Path arguments: pattern checks, validation and Dropbox-style lowercasing.
//!
//! Dropbox matches paths case-insensitively and after NFC normalisation, but keeps the casing
//! a name was first written with. Lowercasing is per character (like Python 2's
//! `unicode.lower()`), so a final `Σ` becomes `σ`, not `ς` as `str::to_lowercase` would do.

use unicode_normalization::UnicodeNormalization;

/// Which Stone path alias a field uses; decides which forms are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// `ReadPath`: `/…`, `id:…`, `rev:…`, `ns:…` (download, get_metadata).
    Read,
    /// `PathROrId`: `""`, `/…`, `id:…`, `ns:…` (list_folder).
    ReadOrId,
    /// `WritePath`: `/…`, `ns:…` (create_folder).
    Write,
    /// `WritePathOrId`: `/…`, `ns:…`, `id:…` (upload, delete, move).
    WriteOrId,
}

impl PathKind {
    fn pattern(self) -> &'static str {
        match self {
            PathKind::Read => r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9_-]+(/.*)?)",
            PathKind::ReadOrId => r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9_-]+(/(.|[\r\n])*)?)",
            PathKind::Write => r"(/(.|[\r\n])*)|(ns:[0-9_-]+(/.*)?)",
            PathKind::WriteOrId => r"(/(.|[\r\n])*)|(ns:[0-9_-]+(/.*)?)|(id:.*)",
        }
    }
}

/// A syntactically valid path argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathArg {
    /// `""`: the root folder.
    Root,
    /// `/a/b`: NFC-normalised components, casing as given.
    Path(Vec<String>),
    /// `id:xyz` or `id:xyz/rest`.
    Id {
        /// The full id including the `id:` prefix.
        id: String,
        /// Components below the item with that id.
        rest: Vec<String>,
    },
    /// `rev:0123456789`: a file revision (read routes only).
    Rev(String),
    /// `ns:123/rest`: relative to a namespace.
    Ns {
        /// The namespace id.
        ns: String,
        /// Components below the namespace root.
        rest: Vec<String>,
    },
}

/// Why a path argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Does not match the field's pattern (400).
    Pattern {
        /// The refused value.
        value: String,
        /// The Stone pattern.
        pattern: &'static str,
    },
    /// `"/"` was used for the root (400).
    RootAsSlash,
    /// The root is not allowed for this field (400).
    RootUnsupported,
    /// A character outside the Basic Multilingual Plane at this char index (400).
    NotBmp(usize),
    /// Syntactically acceptable but not a valid Dropbox path: the route's `malformed_path`.
    Malformed(&'static str),
}

impl PathError {
    /// The 400 text after the field name, or `None` for [`PathError::Malformed`], which is a
    /// route error rather than a bad request.
    pub fn bad_request_detail(&self, field: &str) -> Option<String> {
        match self {
            PathError::Pattern { value, pattern } => Some(format!(
                "{field}: '{value}' did not match pattern '{pattern}'"
            )),
            PathError::RootAsSlash => Some(format!(
                "{field}: Specify the root folder as an empty string rather than as \"/\"."
            )),
            PathError::RootUnsupported => Some(format!("{field}: The root folder is unsupported.")),
            PathError::NotBmp(index) => Some(format!(
                "{field}: invalid path: character at index {index}: not part of the Unicode Basic Multilingual Plane"
            )),
            PathError::Malformed(_) => None,
        }
    }
}

/// Longest allowed component, in characters.
pub const MAX_COMPONENT_CHARS: usize = 255;

/// Parses and validates a path argument of the given kind. `allow_root` says whether `""` is
/// accepted where the pattern allows it.
pub fn parse(raw: &str, kind: PathKind, allow_root: bool) -> Result<PathArg, PathError> {
    let pattern_error = || PathError::Pattern {
        value: raw.to_string(),
        pattern: kind.pattern(),
    };
    if let Some(index) = raw.chars().position(|c| c as u32 > 0xFFFF) {
        return Err(PathError::NotBmp(index));
    }
    if raw.is_empty() {
        return match kind {
            PathKind::ReadOrId if allow_root => Ok(PathArg::Root),
            PathKind::ReadOrId | PathKind::Read => Err(PathError::RootUnsupported),
            PathKind::Write | PathKind::WriteOrId => Err(pattern_error()),
        };
    }
    if raw == "/" {
        return Err(PathError::RootAsSlash);
    }
    if raw.starts_with('/') {
        return Ok(PathArg::Path(components(raw)?));
    }
    if let Some(rest) = raw.strip_prefix("id:") {
        if kind == PathKind::Write {
            return Err(pattern_error());
        }
        let (id, below) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        if id.is_empty() {
            return Err(PathError::Malformed("empty id"));
        }
        let rest = if below.is_empty() {
            Vec::new()
        } else {
            components(below)?
        };
        return Ok(PathArg::Id {
            id: format!("id:{id}"),
            rest,
        });
    }
    if let Some(rev) = raw.strip_prefix("rev:") {
        let valid = rev.len() >= 9 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if kind == PathKind::Read && valid {
            return Ok(PathArg::Rev(rev.to_string()));
        }
        return Err(pattern_error());
    }
    if let Some(rest) = raw.strip_prefix("ns:") {
        let (ns, below) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_digit()) {
            return Err(pattern_error());
        }
        let rest = if below.is_empty() || below == "/" {
            Vec::new()
        } else {
            components(below)?
        };
        return Ok(PathArg::Ns {
            ns: ns.to_string(),
            rest,
        });
    }
    Err(pattern_error())
}

/// Splits `/a/b` into NFC components, refusing what Dropbox calls a malformed path.
fn components(raw: &str) -> Result<Vec<String>, PathError> {
    if raw.ends_with('/') {
        return Err(PathError::Malformed("trailing slash"));
    }
    if raw.chars().last().is_some_and(char::is_whitespace) {
        return Err(PathError::Malformed("trailing whitespace"));
    }
    let normalised: String = raw.nfc().collect();
    let mut out = Vec::new();
    for part in normalised.split('/').skip(1) {
        if part.is_empty() {
            return Err(PathError::Malformed("empty path component"));
        }
        if part == "." || part == ".." {
            return Err(PathError::Malformed("relative path component"));
        }
        if part.chars().count() > MAX_COMPONENT_CHARS {
            return Err(PathError::Malformed(
                "path component longer than 255 characters",
            ));
        }
        out.push(part.to_string());
    }
    Ok(out)
}

/// Dropbox's case folding: NFC, then lowercase each character on its own.
pub fn lower(s: &str) -> String {
    s.nfc().flat_map(char::to_lowercase).collect()
}

/// `/a/b` from components (`""` for none).
pub fn join(components: &[String]) -> String {
    let mut out = String::new();
    for c in components {
        out.push('/');
        out.push_str(c);
    }
    out
}

/// The last component of a path (`""` for the root).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The parent of a path (`""` for top-level items and the root).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Orders lowercased paths so that every folder comes right before its own contents.
pub fn listing_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str) -> Result<PathArg, PathError> {
        parse(raw, PathKind::WriteOrId, false)
    }

    #[test]
    fn accepts_plain_paths() {
        assert_eq!(
            p("/Docs/Report.PDF"),
            Ok(PathArg::Path(vec!["Docs".into(), "Report.PDF".into()]))
        );
        assert_eq!(
            parse("", PathKind::ReadOrId, true),
            Ok(PathArg::Root),
            "root is the empty string"
        );
    }

    #[test]
    fn root_rules() {
        assert_eq!(
            parse("/", PathKind::ReadOrId, true),
            Err(PathError::RootAsSlash)
        );
        assert_eq!(
            parse("", PathKind::Read, false),
            Err(PathError::RootUnsupported)
        );
        assert!(matches!(p(""), Err(PathError::Pattern { .. })));
        let detail = PathError::RootAsSlash
            .bad_request_detail("path")
            .unwrap_or_default();
        assert_eq!(
            detail,
            "path: Specify the root folder as an empty string rather than as \"/\"."
        );
    }

    #[test]
    fn pattern_mismatch() {
        let err = p("test").unwrap_err();
        let detail = err.bad_request_detail("path").unwrap_or_default();
        assert!(
            detail.starts_with("path: 'test' did not match pattern '"),
            "{detail}"
        );
        assert!(matches!(
            parse("id:abc", PathKind::Write, false),
            Err(PathError::Pattern { .. })
        ));
    }

    #[test]
    fn malformed_paths() {
        for bad in ["/a/", "/a//b", "/a ", "/a/\t", "/a/./b", "/a/.."] {
            assert!(matches!(p(bad), Err(PathError::Malformed(_))), "{bad}");
        }
        let long = format!("/{}", "x".repeat(256));
        assert!(matches!(p(&long), Err(PathError::Malformed(_))));
        let ok = format!("/{}", "é".repeat(255));
        assert!(p(&ok).is_ok(), "255 characters (not bytes) are fine");
    }

    #[test]
    fn non_bmp_rejected_with_char_index() {
        assert_eq!(p("/ab😀.txt"), Err(PathError::NotBmp(3)));
        let detail = PathError::NotBmp(3)
            .bad_request_detail("path")
            .unwrap_or_default();
        assert_eq!(
            detail,
            "path: invalid path: character at index 3: not part of the Unicode Basic Multilingual Plane"
        );
    }

    #[test]
    fn ids_revs_and_namespaces() {
        assert_eq!(
            p("id:abc/Sub/f.txt"),
            Ok(PathArg::Id {
                id: "id:abc".into(),
                rest: vec!["Sub".into(), "f.txt".into()]
            })
        );
        assert_eq!(
            parse("rev:0123456789abcdef", PathKind::Read, false),
            Ok(PathArg::Rev("0123456789abcdef".into()))
        );
        assert!(matches!(
            p("rev:0123456789"),
            Err(PathError::Pattern { .. })
        ));
        assert_eq!(
            p("ns:42/a"),
            Ok(PathArg::Ns {
                ns: "42".into(),
                rest: vec!["a".into()]
            })
        );
    }

    #[test]
    fn lowercasing_is_per_char_and_nfc() {
        // str::to_lowercase would turn the final Σ into ς.
        assert_eq!(lower("/ΟΔΟΣ"), "/οδοσ");
        assert_ne!("/ΟΔΟΣ".to_lowercase(), lower("/ΟΔΟΣ"));
        // "e" + combining acute (NFD) folds to the same key as the precomposed "é".
        assert_eq!(lower("/Cafe\u{301}"), lower("/CAFÉ"));
        assert_eq!(lower("/CAFÉ"), "/caf\u{e9}");
        // Components are stored NFC.
        assert_eq!(
            p("/Cafe\u{301}"),
            Ok(PathArg::Path(vec!["Caf\u{e9}".into()]))
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(join(&["a".into(), "B".into()]), "/a/B");
        assert_eq!(file_name("/a/B"), "B");
        assert_eq!(parent("/a/B"), "/a");
        assert_eq!(parent("/a"), "");
        let mut v = ["/a/b", "/a b", "/a", "/a/b/c", "/"];
        v.sort_by(|a, b| listing_order(a, b));
        let a = v.iter().position(|x| *x == "/a").unwrap_or(99);
        let ab = v.iter().position(|x| *x == "/a/b").unwrap_or(0);
        let abc = v.iter().position(|x| *x == "/a/b/c").unwrap_or(0);
        assert!(a < ab && ab < abc);
    }
}
