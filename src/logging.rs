//! The process's log: `tracing`, filtered by `RUST_LOG` (default `info`), written to
//! standard error as text or, with `LOG_FORMAT=json`, one JSON object a line. The `log`
//! macros used across the code (and by actix and diesel) reach it through `tracing-log`,
//! so they too carry the request span (`request_id`, see `http::middleware::observe`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the logger once for the process; a second call (several commands or apps in
/// one process, as in tests) keeps the first.
pub fn init(format: LogFormat) {
    // As env_logger did: `info` when RUST_LOG is unset or empty, and a directive that does
    // not parse is skipped with a warning rather than stopping the start-up.
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(layer.event_format(TextLine)).try_init(),
        LogFormat::Json => {
            registry.with(layer.fmt_fields(JsonFields::new()).event_format(JsonLine)).try_init()
        }
    };
}

/// The metadata of the event as its call site wrote it: a `log` record's own level and
/// target, not those of the bridge.
fn metadata_of<'a>(event: &'a Event<'a>, normalized: &'a Option<Metadata<'a>>) -> &'a Metadata<'a> {
    normalized.as_ref().unwrap_or_else(|| event.metadata())
}

/// The fields of the spans the event happened in (the request's id), outermost first,
/// as the layer's field formatter wrote them.
fn span_fields<S, N>(ctx: &FmtContext<'_, S, N>) -> Vec<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let spans = ctx.event_scope().into_iter().flat_map(|scope| scope.from_root());
    spans
        .filter_map(|span| span.extensions().get::<FormattedFields<N>>().map(|fields| fields.fields.clone()))
        .filter(|fields| !fields.is_empty())
        .collect()
}

/// `[2026-11-24T22:13:15Z INFO  target request_id=…] message`: the line env_logger wrote,
/// with the fields of the spans the event happened in.
struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let metadata = metadata_of(event, &normalized);
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        write!(writer, "[{now} {:<5} {}", metadata.level(), metadata.target())?;
        for fields in span_fields(ctx) {
            write!(writer, " {fields}")?;
        }
        write!(writer, "] ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `{"timestamp", "level", "target", "request_id"?, "message", …}`: one object a line,
/// the span fields and the event's fields at the top level.
struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let metadata = metadata_of(event, &normalized);
        let mut line = Map::new();
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        line.insert("timestamp".into(), now.to_string().into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        for fields in span_fields(ctx) {
            if let Ok(Value::Object(fields)) = serde_json::from_str(&fields) {
                line.extend(fields);
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values, without the `log.*` fields the bridge adds (their
/// content is in `level` and `target` already).
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

impl JsonVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with("log.") {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}
