//! The admin API under `/admin/users`: account management for bearer tokens whose roles
//! contain `admin`. The work is the core's (`Accounts`), shared with the CLI.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::auth::accounts::{Actor, Creation, Update};
use crate::auth::rules::validate_username;
use crate::auth::views::AdminUserView;
use crate::http::extract::Admin;
use crate::http::openapi::responses::{
    AdminErrors, DatabaseErrors, ErrorBody, JsonBodyErrors, LastAdminErrors, ServerErrors,
};
use crate::http::{ApiError, AppState};
use utoipa::{IntoParams, ToSchema};

/// The `{id}` of the admin paths; anything but a uuid names no user (404).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct UserId {
    id: Uuid,
}

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 100;

impl Admin {
    /// The admin, as the core's audit lines name them.
    pub(super) fn actor(&self) -> Actor {
        Actor::Admin(self.0.account.id)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Users per page, 1 to 100 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next` of the previous page: a username in its stored form (lower case), as
    /// lower-case hex. The pattern is exactly what `decode_cursor` accepts: 1 to 150 bytes,
    /// each one of the username rule's characters (`+ - .`, digits, `@`, `_`, `a-z`).
    #[param(pattern = "^(?:2[bde]|3[0-9]|40|5f|6[1-9a-f]|7[0-9a]){1,150}$")]
    after: Option<String>,
}

/// A page of users, by username; `next` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct ListResponse {
    users: Vec<AdminUserView>,
    next: Option<String>,
}

/// Without `password` the account cannot log in until one is set; without `roles` it
/// gets `DEFAULT_ROLES`.
#[derive(Deserialize, ToSchema)]
pub struct CreateRequest {
    #[schema(min_length = 1, max_length = 150, pattern = "^[A-Za-z0-9@.+_-]*$", example = "bob")]
    username: String,
    #[schema(value_type = Option<String>, min_length = 8, max_length = 1024)]
    password: Option<SecretString>,
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(value_type = Option<Vec<RoleName>>)]
    roles: Option<Vec<String>>,
}

/// Members left out are left as they are.
#[derive(Deserialize, ToSchema)]
pub struct UpdateRequest {
    /// Absent leaves the address; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Email, max_length = 254)]
    email: Option<Option<String>>,
    #[schema(value_type = Option<Vec<RoleName>>)]
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
    /// Whether the address counts as verified; a new address without it does not.
    email_verified: Option<bool>,
    #[schema(value_type = Option<String>, min_length = 8, max_length = 1024)]
    password: Option<SecretString>,
}

/// Tells a member given as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::deserialize(deserializer).map(Some)
}

fn page_size(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else { return Ok(DEFAULT_PAGE_SIZE) };
    raw.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
        ApiError::Validation(format!("limit must be a whole number from 1 to {MAX_PAGE_SIZE}"))
    })
}

/// Cursors are opaque to clients: the last username of the page, as hex, whose alphabet
/// needs no escaping in a query string and lets the OpenAPI pattern say exactly which
/// cursors are valid.
fn encode_cursor(username: &str) -> String {
    username.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The username a cursor stands for; anything else is refused before it reaches the
/// database (a NUL, say, which PostgreSQL text cannot hold). Valid cursors are exactly
/// those of the pattern of `ListQuery::after`, so that any it allows is a position.
fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = cursor
        .len()
        .is_multiple_of(2)
        .then(|| {
            cursor.as_bytes().chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
        })
        .flatten();
    bytes
        .and_then(|bytes: Vec<u8>| String::from_utf8(bytes).ok())
        .filter(|username| validate_username(username).is_ok_and(|stored| stored == *username))
        .ok_or_else(|| ApiError::Validation("after is not a cursor this API returned".into()))
}

/// A role name as `auth::rules` has it, for the OpenAPI document.
struct RoleName;

impl utoipa::PartialSchema for RoleName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[a-z0-9_.:-]{1,64}$")).into()
    }
}

impl ToSchema for RoleName {}

/// A path id that is not a uuid names no user.
fn user_id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::NotFound)
}

/// Users, a page at a time.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = ListResponse),
        (status = 422, description = "`validation_failed`: a bad `limit` or `after`", body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn list(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_size(query.limit.as_deref())?;
    let after = query.after.as_deref().map(decode_cursor).transpose()?;
    let page = state.core.accounts.page(after, limit).await?;
    Ok(HttpResponse::Ok().json(ListResponse {
        users: page.accounts.iter().map(AdminUserView::from).collect(),
        next: page.next.as_deref().map(encode_cursor),
    }))
}

/// One user.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", params(UserId), security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserView),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn read(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let account = state.core.accounts.find(user_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(&account)))
}

/// Creates a user, with exactly the roles given (else `DEFAULT_ROLES`).
#[utoipa::path(post, path = "/admin/users", tag = "admin", request_body = CreateRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new user", body = AdminUserView),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        AdminErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn create(
    admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let CreateRequest { username, password, email, roles } = body.into_inner();
    let creation = Creation { username, password, email, roles };
    let account = state.core.accounts.create(admin.actor(), creation).await?;
    Ok(HttpResponse::Created().json(AdminUserView::from(&account)))
}

/// Changes a user; removing a role or disabling revokes the user's tokens. Taking the
/// `admin` role from the last enabled admin, or disabling it, is refused.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", params(UserId), request_body = UpdateRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed user", body = AdminUserView),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, LastAdminErrors, JsonBodyErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn update(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<UpdateRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = user_id(&path)?;
    let UpdateRequest { email, roles, disabled, email_verified, password } = body.into_inner();
    let update = Update { email, roles, disabled, email_verified, password };
    let account = state.core.accounts.update(admin.actor(), id, update).await?;
    Ok(HttpResponse::Ok().json(AdminUserView::from(&account)))
}

/// Deletes a user; never the last enabled admin.
#[utoipa::path(delete, path = "/admin/users/{id}", tag = "admin", params(UserId), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, LastAdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn delete(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.core.accounts.delete(admin.actor(), user_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes a user's refresh token and every access token issued so far.
#[utoipa::path(post, path = "/admin/users/{id}/logout", tag = "admin", params(UserId), security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn log_out(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.core.accounts.log_out(admin.actor(), user_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a user's second factor (a lost phone) and ends its sessions.
#[utoipa::path(delete, path = "/admin/users/{id}/mfa", tag = "admin", params(UserId), security(("bearer" = [])),
    responses(
        (status = 204, description = "The factor and its recovery codes are gone, and every session ended"),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        AdminErrors, DatabaseErrors, ServerErrors,
    ))]
pub async fn remove_mfa(
    admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.core.accounts.remove_mfa(admin.actor(), user_id(&path)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some("1")).unwrap(), 1);
        assert_eq!(page_size(Some("100")).unwrap(), MAX_PAGE_SIZE);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(page_size(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_anything_but_a_stored_username_is_refused() {
        for username in ["alice.b", "bob+tag@example.com", "_-.", &"z".repeat(150)] {
            assert_eq!(decode_cursor(&encode_cursor(username)).unwrap(), username);
        }
        assert_eq!(encode_cursor("a@b"), "614062");
        let too_long = encode_cursor(&"z".repeat(151));
        let refused = [
            "", "6", "!!", "AA", "00", "6100", "61+1", "+f", "6G", "41", "ff", "c3a5", "2f", "20", "ÿÿ",
            "YWxpY2U", // a base64url cursor of earlier versions
            &too_long,
        ];
        for bad in refused {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_documented_pattern_is_exactly_what_decode_cursor_accepts() {
        use utoipa::OpenApi;
        let document = serde_json::to_value(crate::http::routes::openapi::ApiDoc::openapi()).unwrap();
        let parameters = document["paths"]["/admin/users"]["get"]["parameters"].as_array().unwrap();
        let after = parameters.iter().find(|p| p["name"] == "after").unwrap();
        let pattern = regex::Regex::new(after["schema"]["pattern"].as_str().unwrap()).unwrap();
        let mut cursors: Vec<String> = (0..=u8::MAX).map(|b| format!("{b:02x}")).collect();
        cursors.extend(["", "6", "6A", "6a6", "61 62", "0061", "6162", "616200"].map(str::to_owned));
        cursors.extend([150, 151].map(|n| encode_cursor(&"z".repeat(n))));
        for cursor in cursors {
            assert_eq!(pattern.is_match(&cursor), decode_cursor(&cursor).is_ok(), "{cursor:?}");
        }
    }
}
