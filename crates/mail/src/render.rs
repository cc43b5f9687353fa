//! Jinja templates: every argument is HTML-escaped where it is printed, and a template
//! that uses a variable its arguments lack is refused, naming it, before rendering.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the template uses {} that email_args lacks", .0.join(", "))]
    MissingArguments(Vec<String>),
    #[error("the template is not valid Jinja")]
    Syntax(#[source] minijinja::Error),
    #[error("the template failed to render")]
    Failed(#[source] minijinja::Error),
}

/// Renders `template` with `args`.
pub fn render(template: &str, args: &Map<String, Value>) -> Result<String, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("mail", template)
        .map_err(RenderError::Syntax)?;
    let compiled = env.get_template("mail").map_err(RenderError::Syntax)?;
    let mut missing: Vec<String> = compiled
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !args.contains_key(name) && env.globals().all(|(global, _)| global != name))
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(RenderError::MissingArguments(missing));
    }
    compiled
        .render(minijinja::Value::from(minijinja::value::Serde(args)))
        .map_err(|err| match err.kind() {
            minijinja::ErrorKind::UndefinedError => {
                RenderError::MissingArguments(vec![err.to_string()])
            }
            _ => RenderError::Failed(err),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn jinja_syntax_renders() {
        let text = render(
            "<p>Hi {{ name }}!</p>{% for item in items %}<li>{{ item|upper }}</li>{% endfor %}{% if vip %}VIP{% endif %}",
            &args(json!({"name": "Ada", "items": ["a", "b"], "vip": true})),
        )
        .unwrap();
        assert_eq!(text, "<p>Hi Ada!</p><li>A</li><li>B</li>VIP");
    }

    #[test]
    fn arguments_are_html_escaped() {
        let text = render(
            "<a href=\"{{ link }}\">{{ name }}</a>",
            &args(json!({"name": "<script>alert(1)</script>", "link": "\"><img src=x>"})),
        )
        .unwrap();
        assert!(!text.contains("<script>"), "{text}");
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert!(!text.contains("\"><img"), "{text}");
    }

    #[test]
    fn missing_arguments_are_named() {
        let err = render(
            "{{ greeting }} {{ name }}, {% for x in things %}{{ x }}{% endfor %}",
            &args(json!({"name": "Ada"})),
        )
        .unwrap_err();
        assert!(
            matches!(&err, RenderError::MissingArguments(names) if names == &["greeting", "things"]),
            "{err:?}"
        );
        // Loop variables and template-local names are not arguments.
        assert!(render("{% set x = 1 %}{{ x }}", &Map::new()).is_ok());
    }

    #[test]
    fn bad_syntax_is_reported() {
        assert!(matches!(
            render("{% if %}", &Map::new()),
            Err(RenderError::Syntax(_))
        ));
    }
}
