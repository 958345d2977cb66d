//! The `token ls` table. Listed tokens never carry their secret ([`Token`] has none); the
//! secret of a new token is printed by the `token create` and `login` verbs alone.

use vm_proto::types::{Token, TokenKind};

use super::{created_short, expiry_short, list_table};

/// The `token ls` table: ID, USER, KIND, NAME, CREATED, EXPIRES, LAST-USED.
pub fn table(tokens: &[Token]) -> String {
    let headers = [
        "ID",
        "USER",
        "KIND",
        "NAME",
        "CREATED",
        "EXPIRES",
        "LAST-USED",
    ];
    list_table(&headers, tokens.iter().map(row))
}

/// One `token ls` row; EXPIRES is `-` for never, LAST-USED `-` for never used.
fn row(token: &Token) -> Vec<String> {
    vec![
        token.id.to_string(),
        token.user.clone(),
        kind(token.kind).to_string(),
        token.name.clone().unwrap_or_else(|| "-".to_string()),
        created_short(&token.created_at),
        expiry_short(token.expires_at.as_deref()),
        token
            .last_used_at
            .as_deref()
            .map_or_else(|| "-".to_string(), created_short),
    ]
}

/// `api` or `session`.
fn kind(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Api => "api",
        TokenKind::Session => "session",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A token as `token.list` returns it.
    pub(crate) fn sample() -> Token {
        Token {
            id: 12,
            user: "ann".into(),
            kind: TokenKind::Api,
            name: Some("ci".into()),
            created_at: "2024-05-01T12:00:00Z".into(),
            expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn list_has_every_column_and_no_secret() {
        let session = Token {
            id: 13,
            kind: TokenKind::Session,
            name: None,
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            last_used_at: Some("2024-05-01T12:00:00Z".into()),
            ..sample()
        };
        let text = table(&[sample(), session]);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "ID",
                "USER",
                "KIND",
                "NAME",
                "CREATED",
                "EXPIRES",
                "LAST-USED"
            ]
        );
        assert_eq!(lines[1][..4], ["12", "ann", "api", "ci"]);
        assert_eq!(lines[1][6..], ["-", "-"]);
        assert_eq!(lines[2][..4], ["13", "ann", "session", "-"]);
        assert!(
            lines[2].contains(&"expired") && lines[2].last().is_some_and(|c| c.ends_with("ago"))
        );
        let json = crate::output::to_json(&[sample()]).expect("json");
        assert!(
            !json.contains("secret") && !json.contains("\"token\""),
            "{json}"
        );
    }
}
