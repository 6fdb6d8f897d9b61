//! The demo page (`DEMO_UI=true`): plain HTML and the built TypeScript client, read from
//! `DEMO_UI_DIR` on each request so that a rebuilt client shows up without a restart.

use actix_web::{HttpResponse, web};

use crate::http::ApiError;
use crate::http::AppState;

pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    serve(&state, "demo/index.html", "text/html; charset=utf-8").await
}

pub async fn client(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    serve(&state, "dist/index.js", "text/javascript; charset=utf-8").await
}

async fn serve(
    state: &AppState,
    file: &'static str,
    content_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    let Some(dir) = state.demo_ui.clone() else {
        return Err(ApiError::NotFound);
    };
    let path = dir.join(file);
    let contents = web::block(move || std::fs::read(path)).await?.map_err(|e| {
        log::warn!("demo UI file {file} is not readable (build clients/js first): {e}");
        ApiError::NotFound
    })?;
    Ok(HttpResponse::Ok().content_type(content_type).body(contents))
}
