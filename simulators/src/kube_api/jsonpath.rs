//! The JSONPath subset of CRD printer columns: `.a.b`, `[n]`, `[*]`, `['key']` and
//! `[?(@.field=="value")]` (also `!=`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        equal: bool,
        value: String,
    },
}

/// A parsed JSONPath.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `.spec.x`, `{.spec.x}` or `.status.conditions[?(@.type=="Ready")].status`.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let mut s = text.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        let s = s.strip_prefix('$').unwrap_or(s);
        let chars: Vec<char> = s.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars.get(i) {
                Some('.') => {
                    i += 1;
                    let start = i;
                    while i < chars.len()
                        && chars.get(i) != Some(&'.')
                        && chars.get(i) != Some(&'[')
                    {
                        i += 1;
                    }
                    let name: String = chars.get(start..i).unwrap_or_default().iter().collect();
                    if name.is_empty() {
                        if i >= chars.len() {
                            break;
                        }
                        return Err(JsonPathError::EmptyField(text.to_owned()));
                    }
                    steps.push(Step::Field(name));
                }
                Some('[') => {
                    let close = find_close(&chars, i)
                        .ok_or_else(|| JsonPathError::Unclosed(text.to_owned()))?;
                    let inner: String =
                        chars.get(i + 1..close).unwrap_or_default().iter().collect();
                    let step =
                        parse_bracket(inner.trim()).map_err(|source| JsonPathError::Subscript {
                            text: text.to_owned(),
                            source,
                        })?;
                    steps.push(step);
                    i = close + 1;
                }
                _ => {
                    let start = i;
                    while i < chars.len()
                        && chars.get(i) != Some(&'.')
                        && chars.get(i) != Some(&'[')
                    {
                        i += 1;
                    }
                    steps.push(Step::Field(
                        chars.get(start..i).unwrap_or_default().iter().collect(),
                    ));
                }
            }
        }
        Ok(Self { steps })
    }

    /// All values the path selects.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(name) => {
                        if let Some(x) = v.get(name) {
                            next.push(x);
                        }
                    }
                    Step::Index(n) => {
                        if let Some(x) = v.get(*n) {
                            next.push(x);
                        }
                    }
                    Step::All => match v {
                        Value::Array(items) => next.extend(items.iter()),
                        Value::Object(map) => next.extend(map.values()),
                        _ => {}
                    },
                    Step::Filter { path, equal, value } => {
                        if let Value::Array(items) = v {
                            for item in items {
                                let mut field = Some(item);
                                for p in path {
                                    field = field.and_then(|f| f.get(p));
                                }
                                let text = field.map(|f| match f {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                });
                                let matches = text.as_deref() == Some(value.as_str());
                                if matches == *equal && field.is_some() {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for (i, c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '[' | '(') => depth += 1,
            (None, ']' | ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        s.get(1..s.len() - 1).unwrap_or_default().to_string()
    } else {
        s.to_string()
    }
}

/// Why a JSONPath does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JsonPathError {
    /// `..` or a trailing `.` before more steps.
    #[error("empty field name in {0:?}")]
    EmptyField(String),
    /// A `[` without its `]`.
    #[error("unclosed [ in {0:?}")]
    Unclosed(String),
    /// A subscript this parser does not know.
    #[error("{source} in {text:?}")]
    Subscript {
        /// The whole path.
        text: String,
        /// What is wrong with the subscript.
        #[source]
        source: SubscriptError,
    },
}

/// Why a `[...]` subscript does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SubscriptError {
    /// A filter without `==` or `!=`.
    #[error("unsupported filter {0:?}")]
    Filter(String),
    /// A filter whose left side is not `@.field`.
    #[error("unsupported filter operand {0:?}")]
    Operand(String),
    /// Anything else.
    #[error("unsupported subscript [{0}]")]
    Other(String),
}

fn parse_bracket(inner: &str) -> Result<Step, SubscriptError> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Ok(n) = inner.parse::<usize>() {
        return Ok(Step::Index(n));
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')')) {
        let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("==") {
            (l, r, true)
        } else if let Some((l, r)) = filter.split_once("!=") {
            (l, r, false)
        } else {
            return Err(SubscriptError::Filter(filter.to_owned()));
        };
        let lhs = lhs.trim();
        let field = lhs
            .strip_prefix("@.")
            .ok_or_else(|| SubscriptError::Operand(lhs.to_owned()))?;
        return Ok(Step::Filter {
            path: field.split('.').map(str::to_string).collect(),
            equal,
            value: unquote(rhs),
        });
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        return Ok(Step::Field(unquote(inner)));
    }
    Err(SubscriptError::Other(inner.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_printer_column_values() {
        let obj = json!({"spec": {"taskId": "t1"}, "status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "ResetSucceeded"}
        ]}, "metadata": {"labels": {"a.b/c": "x"}}});
        let find = |p: &str| -> Vec<Value> {
            JsonPath::parse(p)
                .map(|jp| jp.find(&obj).into_iter().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(find(".spec.taskId"), vec![json!("t1")]);
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type=='Ready')].reason"),
            vec![json!("ResetSucceeded")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!=\"Ready\")].type"),
            vec![json!("Reconciling")]
        );
        assert_eq!(find(".status.conditions[1].type"), vec![json!("Ready")]);
        assert_eq!(find(".status.conditions[*].type").len(), 2);
        assert_eq!(find(".metadata.labels['a.b/c']"), vec![json!("x")]);
        assert!(find(".status.phase").is_empty());
        assert!(JsonPath::parse(".a[?(@.x > 1)]").is_err());
    }
}
