//! The demo page (`DEMO_UI=true`): plain HTML and the built TypeScript client. Both are
//! built into the binary, so the page works from the binary alone; with `DEMO_UI_DIR`
//! they are read from that directory on each request instead, so that a rebuilt client
//! shows up without a restart.

use actix_web::http::header::CONTENT_SECURITY_POLICY;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::config::DemoUi;
use crate::http::middleware::page_policy;
use crate::http::openapi::responses::{ErrorBody, ServerErrors};
use crate::http::{ApiError, AppState};

/// A file of the demo: where it is under `clients/js` and its built-in copy.
struct DemoFile {
    path: &'static str,
    embedded: &'static str,
    content_type: &'static str,
}

const PAGE: DemoFile = DemoFile {
    path: "demo/index.html",
    embedded: include_str!("../../../clients/js/demo/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// The committed build of `clients/js/src/index.ts`; `clients/js/ci.sh` fails when it is
/// not the current build.
const CLIENT: DemoFile = DemoFile {
    path: "dist/index.js",
    embedded: include_str!("../../../clients/js/dist/index.js"),
    content_type: "text/javascript; charset=utf-8",
};

/// The demo page (`DEMO_UI=true`).
#[utoipa::path(get, path = "/demo", tag = "operations",
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 404, description = "`not_found`: the demo is off", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let html = contents(&state, &PAGE).await?;
    let policy = policy(&String::from_utf8_lossy(&html));
    Ok(HttpResponse::Ok()
        .content_type(PAGE.content_type)
        .insert_header((CONTENT_SECURITY_POLICY, policy))
        .body(html))
}

/// The TypeScript client, built, that the demo page imports.
#[utoipa::path(get, path = "/demo/tollgate-client.js", tag = "operations",
    responses(
        (status = 200, description = "An ES module", content_type = "text/javascript", body = String),
        (status = 404, description = "`not_found`: the demo is off", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn client(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let script = contents(&state, &CLIENT).await?;
    Ok(HttpResponse::Ok().content_type(CLIENT.content_type).body(script))
}

async fn contents(state: &AppState, file: &'static DemoFile) -> Result<Vec<u8>, ApiError> {
    Ok(match &state.http.demo_ui {
        None => return Err(ApiError::NotFound),
        Some(DemoUi::Embedded) => file.embedded.as_bytes().to_vec(),
        Some(DemoUi::Dir(dir)) => {
            let path = dir.join(file.path);
            web::block(move || std::fs::read(path))
                .await
                .map_err(|e| ApiError::internal(format!("blocking pool: {e}")))?
                .map_err(|e| {
                    log::warn!("demo UI file {} is not readable (build clients/js first): {e}", file.path);
                    ApiError::NotFound
                })?
        }
    })
}

/// The page may run its own inline script and style, named by their hashes (so that
/// any other inline script, injected or not, is refused), the client module it imports,
/// and call this origin's API. Read from the page as served, which with `DEMO_UI_DIR` is
/// whatever the file says now.
fn policy(html: &str) -> String {
    let hashes = |tag| {
        inline_elements(html, tag)
            .into_iter()
            .map(|body| format!(" 'sha256-{}'", STANDARD.encode(Sha256::digest(body))))
            .collect::<String>()
    };
    let styles = hashes("style");
    let styles = if styles.is_empty() { " 'none'".to_owned() } else { styles };
    page_policy(&format!("script-src 'self'{}; style-src{styles}; connect-src 'self'", hashes("script")))
}

/// The contents of each `<tag …>…</tag>` of `html` that has no `src`.
fn inline_elements<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let element = &rest[start + open.len()..];
        let Some((attributes, body)) = element.split_once('>') else { break };
        let Some(end) = body.find(&close) else { break };
        if !attributes.contains("src=") {
            found.push(&body[..end]);
        }
        rest = &body[end + close.len()..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_exactly_the_pages_inline_script_and_style() {
        let html = "<style>a{}</style><script src=\"/x.js\"></script><script type=\"module\">run()</script>";
        let hash = |body: &str| STANDARD.encode(Sha256::digest(body));
        assert_eq!(inline_elements(html, "script"), ["run()"]);
        assert_eq!(
            policy(html),
            format!(
                "default-src 'none'; script-src 'self' 'sha256-{}'; style-src 'sha256-{}'; connect-src 'self'; \
                 base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
                hash("run()"),
                hash("a{}")
            )
        );
        // The demo page has one of each, and no style attribute, which no hash allows.
        assert_eq!(inline_elements(PAGE.embedded, "script").len(), 1);
        assert_eq!(inline_elements(PAGE.embedded, "style").len(), 1);
        assert_eq!(PAGE.embedded.matches("<script").count(), 1);
        assert!(!PAGE.embedded.contains(" style="));
    }
}
