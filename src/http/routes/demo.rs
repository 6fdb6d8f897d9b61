//! The demo page (`DEMO_UI=true`): plain HTML and the built TypeScript client. Both are
//! built into the binary, so the page works from the binary alone; with `DEMO_UI_DIR`
//! they are read from that directory on each request instead, so that a rebuilt client
//! shows up without a restart.

use actix_web::{HttpResponse, web};

use crate::config::DemoUi;
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
    serve(&state, &PAGE).await
}

/// The TypeScript client, built, that the demo page imports.
#[utoipa::path(get, path = "/demo/tollgate-client.js", tag = "operations",
    responses(
        (status = 200, description = "An ES module", content_type = "text/javascript", body = String),
        (status = 404, description = "`not_found`: the demo is off", body = ErrorBody),
        ServerErrors,
    ))]
pub async fn client(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    serve(&state, &CLIENT).await
}

async fn serve(state: &AppState, file: &'static DemoFile) -> Result<HttpResponse, ApiError> {
    let contents = match &state.http.demo_ui {
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
    };
    Ok(HttpResponse::Ok().content_type(file.content_type).body(contents))
}
