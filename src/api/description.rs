//! CRD descriptions as prose: doc comments are hard-wrapped at 100 columns, and `kubectl
//! explain` wraps again at 80, so every kept line break would show as a ragged one.

use schemars::Schema;
use schemars::transform::transform_subschemas;

/// Join the wrapped lines of every `description` in `schema` and its subschemas into one
/// line per paragraph (paragraphs stay separated by a blank line).
pub(crate) fn unwrap_descriptions(schema: &mut Schema) {
    if let Some(serde_json::Value::String(text)) = schema.get_mut("description") {
        *text = unwrap(text);
    }
    transform_subschemas(&mut unwrap_descriptions, schema);
}

fn unwrap(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_join_and_paragraphs_stay() {
        assert_eq!(unwrap("one\ntwo\n  three"), "one two three");
        assert_eq!(unwrap("first\nline\n\nsecond"), "first line\n\nsecond");
        assert_eq!(unwrap("single"), "single");
        let mut schema = schemars::json_schema!({
            "description": "a\nb",
            "properties": {"x": {"description": "c\nd", "items": {"description": "e\nf"}}}
        });
        unwrap_descriptions(&mut schema);
        assert_eq!(
            schema.as_value(),
            &serde_json::json!({
                "description": "a b",
                "properties": {"x": {"description": "c d", "items": {"description": "e f"}}}
            })
        );
    }
}
