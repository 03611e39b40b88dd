//! Database URLs without their password: for printing, and for the client tools, which get
//! the password from the environment (`PGPASSWORD`) rather than on a command line any local
//! user can read.

/// `url` with the password, if it has one, taken out: `(url_without_it, password)`. The
/// password comes back percent-decoded, as the server expects it.
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    // libpq and sqlx also take the password as a query parameter.
    if let Some((base, query)) = url.split_once('?') {
        let mut password = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("password=") {
                Some(p) => {
                    password = Some(percent_decode(p));
                    false
                }
                None => true,
            })
            .collect();
        if password.is_some() {
            let (bare, in_userinfo) = split_password(base);
            let joined = if kept.is_empty() {
                bare
            } else {
                format!("{bare}?{}", kept.join("&"))
            };
            return (joined, in_userinfo.or(password));
        }
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    (
        format!("{scheme}://{user}@{host}{tail}"),
        Some(percent_decode(password)),
    )
}

/// `url` as it may be shown: any password replaced by `***`.
pub fn redact_database_url(url: &str) -> String {
    match split_password(url) {
        (bare, Some(_)) => {
            let (scheme, rest) = bare.split_once("://").unwrap_or(("", &bare));
            match rest.split_once('@') {
                Some((user, host)) => format!("{scheme}://{user}:***@{host}"),
                None => bare,
            }
        }
        (same, None) => same,
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_taken_out_and_decoded() {
        assert_eq!(
            split_password("postgres://ferry:s%40cret@db.example:5432/ferry?sslmode=require"),
            (
                "postgres://ferry@db.example:5432/ferry?sslmode=require".to_owned(),
                Some("s@cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://ferry@db/ferry"),
            ("postgres://ferry@db/ferry".to_owned(), None)
        );
        assert_eq!(
            redact_database_url("postgres://ferry:hunter2@db/ferry"),
            "postgres://ferry:***@db/ferry"
        );
        assert_eq!(
            redact_database_url("sqlite://data/ferry.db"),
            "sqlite://data/ferry.db"
        );
        assert_eq!(split_password("garbage").1, None);
        assert_eq!(
            split_password("postgres://ferry@db/ferry?sslmode=require&password=hun%20ter2"),
            (
                "postgres://ferry@db/ferry?sslmode=require".to_owned(),
                Some("hun ter2".to_owned())
            )
        );
        assert!(
            !redact_database_url("postgres://ferry@db/ferry?password=hunter2").contains("hunter2")
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
