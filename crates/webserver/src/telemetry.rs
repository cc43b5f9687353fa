//! Logging: text or JSON lines on stderr (stdout is left to command output), with the
//! value of every field whose name says password, secret, token or key redacted, in
//! events and spans alike.

use std::fmt;

use api::redact::{REDACTED, is_sensitive};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::settings::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .fmt_fields(RedactingFields)
        .event_format(RedactingFormat { format })
        .try_init();
}

/// Field values, with sensitive ones replaced.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    values: Map<String, Value>,
}

impl Fields {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "message" {
            self.message = Some(match value {
                Value::String(text) => text,
                other => other.to_string(),
            });
        } else if is_sensitive(name) {
            self.values.insert(name.to_owned(), Value::from(REDACTED));
        } else {
            self.values.insert(name.to_owned(), value);
        }
    }

    /// `name=value` pairs separated by spaces.
    fn as_text(&self) -> String {
        self.values
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => format!("{name}={text}"),
                other => format!("{name}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

/// Formats span fields (stored with each span) with redaction.
struct RedactingFields;

impl<'writer> FormatFields<'writer> for RedactingFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut collected = Fields::default();
        fields.record(&mut collected);
        write!(writer, "{}", collected.as_text())
    }
}

struct RedactingFormat {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for RedactingFormat
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
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let spans: Vec<(String, String)> = ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
            .map(|span| {
                let extensions = span.extensions();
                let formatted = extensions
                    .get::<FormattedFields<N>>()
                    .map(|fields| fields.fields.clone())
                    .unwrap_or_default();
                (span.name().to_owned(), formatted)
            })
            .collect();

        match self.format {
            LogFormat::Json => {
                let mut line = Map::new();
                line.insert("timestamp".to_owned(), Value::from(timestamp));
                line.insert("level".to_owned(), Value::from(metadata.level().as_str()));
                line.insert("target".to_owned(), Value::from(metadata.target()));
                line.insert(
                    "message".to_owned(),
                    Value::from(fields.message.unwrap_or_default()),
                );
                for (name, value) in fields.values {
                    line.entry(name).or_insert(value);
                }
                if !spans.is_empty() {
                    let spans = spans
                        .into_iter()
                        .map(|(name, fields)| serde_json::json!({"name": name, "fields": fields}))
                        .collect();
                    line.insert("spans".to_owned(), Value::Array(spans));
                }
                writeln!(writer, "{}", Value::Object(line))
            }
            LogFormat::Text => {
                write!(
                    writer,
                    "{timestamp} {:>5} {}: ",
                    metadata.level(),
                    metadata.target()
                )?;
                for (name, fields) in &spans {
                    if fields.is_empty() {
                        write!(writer, "{name}: ")?;
                    } else {
                        write!(writer, "{name}{{{fields}}}: ")?;
                    }
                }
                write!(writer, "{}", fields.message.as_deref().unwrap_or_default())?;
                let rest = fields.as_text();
                if rest.is_empty() {
                    writeln!(writer)
                } else {
                    writeln!(writer, " {rest}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    fn capture(format: LogFormat, log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(RedactingFields)
            .event_format(RedactingFormat { format })
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    fn log_secrets() {
        let span = tracing::info_span!(
            "register",
            bootstrap_secret = "s3cr3t-span",
            region = "us-east-1"
        );
        let _entered = span.enter();
        tracing::info!(
            access_token = "eyJ-token-value",
            password = "hunter2",
            api_key = %"key-value",
            user = "alice",
            "registered"
        );
    }

    #[test]
    fn text_logs_redact_sensitive_fields_in_events_and_spans() {
        let out = capture(LogFormat::Text, log_secrets);
        for secret in ["s3cr3t-span", "eyJ-token-value", "hunter2", "key-value"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("registered"), "{out}");
        assert!(out.contains("user=alice"), "{out}");
        assert!(out.contains("region=us-east-1"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
    }

    #[test]
    fn json_logs_are_one_object_per_line_and_redacted() {
        let out = capture(LogFormat::Json, log_secrets);
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["message"], "registered");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["user"], "alice");
        assert_eq!(line["access_token"], REDACTED);
        assert_eq!(line["password"], REDACTED);
        assert_eq!(line["spans"][0]["name"], "register");
        for secret in ["s3cr3t-span", "eyJ-token-value", "hunter2", "key-value"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
    }
}
