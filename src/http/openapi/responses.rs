//! The error responses of the OpenAPI document that several endpoints share, listed
//! once; a leaf, so that every route module can name them.

use utoipa::{IntoResponses, ToSchema};

/// The body of every error response, whatever its status. The type that is sent is
/// `tollgate_verify::ErrorBody` (shared with the verifier crate, which knows nothing of
/// OpenAPI); a unit test below holds the two together.
#[derive(ToSchema)]
#[schema(example = json!({"error": "invalid or expired access token", "code": "invalid_token"}))]
#[allow(dead_code)]
pub struct ErrorBody {
    /// A human-readable message; never an internal detail.
    error: String,
    /// A stable snake_case code to program against.
    code: String,
}

// The error responses that several endpoints share, listed once.

/// Any request can meet these.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// `internal_error`: an unexpected failure; the body never says more.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Endpoints that read the database.
#[derive(IntoResponses)]
pub enum DatabaseErrors {
    /// `database_unavailable`, or `overloaded` when every password-hashing slot stayed busy.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// Endpoints that read a JSON body.
#[derive(IntoResponses)]
pub enum JsonBodyErrors {
    /// `invalid_json`: the body is not JSON at all; `bad_request`: e.g. two
    /// `Authorization` headers.
    #[response(status = 400)]
    InvalidJson(ErrorBody),
    /// `payload_too_large`: over 64 KiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// `unsupported_media_type`: not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// `validation_failed`: well-formed JSON that breaks a rule (missing field, too short…).
    #[response(status = 422)]
    Validation(ErrorBody),
}

/// Endpoints that take a bearer token.
#[derive(IntoResponses)]
pub enum BearerErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`, with an RFC 6750 challenge.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
}

/// The admin API.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`, with an RFC 6750 challenge.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    /// `forbidden`: the token's roles do not contain `admin`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The admin changes that can take an admin's rights away (roles, disabling, deletion).
#[derive(IntoResponses)]
pub enum LastAdminErrors {
    /// `last_admin`: the change would leave no enabled admin (make another one first).
    #[response(status = 409)]
    LastAdmin(ErrorBody),
}

/// Signup, login, password change, and refused refresh tokens (refresh, logout).
#[derive(IntoResponses)]
pub enum RateLimitErrors {
    /// `rate_limited`: too many attempts from this IP or for this username.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(ErrorBody),
}

/// The endpoints that take the service token.
#[derive(IntoResponses)]
pub enum ServiceTokenErrors {
    /// `bad_request`: more than one `Authorization` header.
    #[response(status = 400)]
    Ambiguous(ErrorBody),
    /// `missing_token` or `invalid_token`: not the configured service token.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(ErrorBody),
    /// `not_found`: no `REVOCATION_FEED_TOKEN` is configured, so the endpoint is off.
    #[response(status = 404)]
    Off(ErrorBody),
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    #[test]
    fn the_error_schema_describes_the_error_body_that_is_sent() {
        let sent = serde_json::to_value(tollgate_verify::ErrorBody::new("message", "code")).unwrap();
        let schema = serde_json::to_value(super::ErrorBody::schema()).unwrap();
        let members: Vec<&String> = sent.as_object().unwrap().keys().collect();
        let documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(members.len(), documented.len());
        for member in members {
            assert!(documented.contains(&member), "{member} is not documented");
            assert_eq!(schema["properties"][member]["type"], "string");
        }
        assert_eq!(schema["required"], serde_json::json!(["error", "code"]));
    }
}
