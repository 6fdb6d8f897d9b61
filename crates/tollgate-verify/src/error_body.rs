//! The error contract tollgate and the services that verify its tokens share, so that a
//! client cannot tell which of them refused it: the JSON body of every error answer and
//! the `WWW-Authenticate` challenges of a 401 (RFC 6750 §3).

use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"error": "<message>", "code": "<snake_case>"}`.
/// `code` is one of the codes tollgate's README lists; `error` is for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>, code: &str) -> Self {
        Self { error: error.into(), code: code.to_owned() }
    }
}

/// The challenge of a 401 to a request that presented no token.
pub const MISSING_TOKEN_CHALLENGE: &str = r#"Bearer realm="tollgate""#;

/// The challenge of a 401 to a request whose token was refused: only a token actually
/// presented earns `error="invalid_token"`.
pub const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="tollgate", error="invalid_token""#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_exactly_error_and_code() {
        let body = ErrorBody::new("missing bearer token", "missing_token");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json, serde_json::json!({ "error": "missing bearer token", "code": "missing_token" }));
        assert_eq!(serde_json::from_value::<ErrorBody>(json).unwrap(), body);
    }
}
