//! The metrics' vocabulary against what people read and what Prometheus evaluates: every label
//! value the code can produce is documented in docs/operating.md (and nothing else is), the
//! alert rules name only values the code produces (and `TaskResetCallsNeedAHuman` names the
//! classes that need a human), and the promtool test cases feed the series the controller
//! really exposes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use kube::core::Status;
use taskreset_controller::ledger::LedgerError;
use taskreset_controller::reconciler::Error;
use taskreset_controller::roma::OutcomeClass;
use taskreset_controller::telemetry::{Format, Metrics};

const OPERATING: &str = "docs/operating.md";
const PROMETHEUS_RULE: &str = "docs/monitoring/taskreset-rules.yaml";
const RULE_FILE: &str = "docs/monitoring/taskreset-rules.prometheus.yaml";
const RULE_TESTS: &str = "docs/monitoring/taskreset-rules.test.yaml";

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One sample line of an exposition: name, labels, value.
type Sample = (String, BTreeMap<String, String>, String);

/// The samples of an exposition (OpenMetrics or the Prometheus text format).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let (name, labels) = parse_series(series);
            (name, labels, value.to_owned())
        })
        .collect()
}

/// `name{a="x",b="y"}` (values without commas or escaped quotes, as ours are).
fn parse_series(series: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series.trim().to_owned(), BTreeMap::new());
    };
    let labels = rest
        .trim_end()
        .trim_end_matches('}')
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("label=value");
            (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
        })
        .collect();
    (name.trim().to_owned(), labels)
}

/// Every reconcile error the reconciler can return, one of each kind its label tells apart.
fn reconcile_errors() -> Vec<Error> {
    let kube = |source| Error::Kube {
        context: "test",
        source,
    };
    vec![
        Error::Ledger(LedgerError::Contended {
            namespace: "data".into(),
            configmap: "taskreset-ledger-0".into(),
        }),
        kube(kube::Error::Api(
            Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        )),
        kube(kube::Error::Api(
            Status::failure("conflict", "Conflict")
                .with_code(409)
                .boxed(),
        )),
        kube(kube::Error::TlsRequired),
    ]
}

/// The exposition after every label value the code can produce was recorded through the code
/// paths that produce it: a call of every outcome class (as the reconciler records it), a call
/// dropped unclassified, and a reconcile error of every kind.
fn exercised() -> String {
    let metrics = Metrics::default();
    for class in OutcomeClass::ALL {
        metrics.call_started().finish(class.as_str());
    }
    drop(metrics.call_started());
    for error in reconcile_errors() {
        metrics.reconcile_failed(error.metric_label());
    }
    for result in taskreset_controller::telemetry::RECONCILE_RESULTS {
        metrics.reconcile_finished(result, std::time::Duration::from_millis(1));
    }
    metrics.encode().expect("encode")
}

/// Metrics whose label values are facts of the build (a version, a commit), not a vocabulary:
/// their labels are documented, their values cannot be.
const BUILD_FACTS: [(&str, &[&str]); 1] = [("taskreset_build_info", &["version", "git_commit"])];

/// `(metric, label) -> values` for every label value the code can produce.
fn emitted_label_values() -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let text = exercised();
    let histograms: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram"))
        .collect();
    for (name, labels, _) in samples(&text) {
        if BUILD_FACTS.iter().any(|(metric, _)| *metric == name) {
            continue;
        }
        // A histogram's samples are documented under the family's name.
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| histograms.contains(family))
            .map_or(name.clone(), str::to_owned);
        for (label, value) in labels {
            if label != "le" {
                out.entry((name.clone(), label)).or_default().insert(value);
            }
        }
    }
    assert!(
        out.contains_key(&("taskreset_resets_total".into(), "outcome".into())),
        "{out:?}"
    );
    out
}

/// The table row of docs/operating.md that documents `metric`.
fn doc_row<'a>(doc: &'a str, metric: &str) -> &'a str {
    doc.lines()
        .find(|l| l.starts_with(&format!("| `{metric}` |")))
        .unwrap_or_else(|| panic!("{OPERATING} has no table row for {metric}"))
}

/// The `code` spans of a Markdown line.
fn code_spans(line: &str) -> BTreeSet<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn operating_md_documents_exactly_the_label_values_the_code_emits() {
    let doc = read(OPERATING);
    let emitted = emitted_label_values();
    let mut checked = 0;
    for ((metric, label), values) in &emitted {
        let row = doc_row(&doc, metric);
        let spans = code_spans(row);
        assert!(
            spans.contains(label),
            "{OPERATING}: the row of {metric} does not name its label `{label}`: {row}"
        );
        let missing: Vec<_> = values.difference(&spans).collect();
        assert!(
            missing.is_empty(),
            "{OPERATING}: the row of {metric} misses the {label} values {missing:?} \
             the code emits: {row}"
        );
        let labels_of_metric: BTreeSet<_> = emitted
            .keys()
            .filter(|(m, _)| m == metric)
            .map(|(_, l)| l.clone())
            .collect();
        let extra: Vec<_> = spans
            .iter()
            .filter(|s| *s != metric && !labels_of_metric.contains(*s) && !values.contains(*s))
            .collect();
        assert!(
            extra.is_empty(),
            "{OPERATING}: the row of {metric} names {extra:?}, which the code never emits \
             as {label}: {row}"
        );
        checked += values.len();
    }
    for (metric, labels) in BUILD_FACTS {
        let row = doc_row(&doc, metric);
        let exposed: BTreeSet<String> = samples(&exercised())
            .into_iter()
            .filter(|(name, _, _)| name == metric)
            .flat_map(|(_, labels, _)| labels.into_keys())
            .collect();
        let documented: BTreeSet<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        assert_eq!(exposed, documented, "the labels of {metric}");
        for label in labels {
            assert!(
                code_spans(row).contains(*label),
                "{OPERATING}: the row of {metric} does not name its label `{label}`: {row}"
            );
        }
    }
    println!(
        "{checked} label values of {} labelled metrics documented",
        emitted.len()
    );
}

/// Every family of the exposition has a row in docs/operating.md, and every row a family.
#[test]
fn operating_md_documents_every_family() {
    let doc = read(OPERATING);
    let text = Metrics::default().encode_as(Format::Text).expect("encode");
    let exposed: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("taskreset_") || name.starts_with("process_"))
        .collect();
    let process = exposed.iter().filter(|f| f.starts_with("process_")).count();
    if cfg!(target_os = "linux") {
        assert_eq!(process, 6, "{text}");
    }
    let undocumented: Vec<_> = exposed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "{OPERATING} lacks rows for {undocumented:?}"
    );
    let stale: Vec<_> = documented
        .difference(&exposed)
        .filter(|name| cfg!(target_os = "linux") || !name.starts_with("process_"))
        .collect();
    assert!(
        stale.is_empty(),
        "{OPERATING} documents {stale:?}, never exposed"
    );
}

#[test]
fn help_text_names_every_label_value() {
    let text = exercised();
    for ((metric, label), values) in emitted_label_values() {
        let family = metric.trim_end_matches("_total");
        let help = text
            .lines()
            .find(|l| l.starts_with(&format!("# HELP {family} ")))
            .unwrap_or_else(|| panic!("no HELP for {family}:\n{text}"));
        for value in values {
            assert!(
                help.contains(&value),
                "the HELP of {family} does not name the {label} value {value}: {help}"
            );
        }
    }
}

/// The alert rules of a rule file (plain groups, or a PrometheusRule's spec.groups).
fn alerts(path: &str) -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_saphyr::from_str(&read(path)).expect("YAML");
    let groups = doc
        .get("spec")
        .unwrap_or(&doc)
        .get("groups")
        .and_then(|g| g.as_array())
        .unwrap_or_else(|| panic!("{path}: no groups"))
        .clone();
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| {
            Some((
                r.get("alert")?.as_str()?.to_owned(),
                r["expr"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// The values a PromQL expression matches for `label` (`label="a"`, `label=~"a|b"`).
fn matched_values(expr: &str, label: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for op in ["=~\"", "=\""] {
        for (i, _) in expr.match_indices(&format!("{label}{op}")) {
            // Not part of a longer label name.
            if expr[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let rest = &expr[i + label.len() + op.len()..];
            let value = &rest[..rest.find('"').expect("closing quote")];
            out.extend(value.split('|').map(str::to_owned));
        }
    }
    out
}

#[test]
fn alert_rules_name_only_label_values_the_code_emits() {
    let emitted = emitted_label_values();
    let mut matchers = 0;
    for path in [PROMETHEUS_RULE, RULE_FILE] {
        let alerts = alerts(path);
        assert!(!alerts.is_empty(), "{path}: no alerts");
        for (alert, expr) in &alerts {
            for ((metric, label), values) in &emitted {
                if !expr.contains(metric.as_str()) {
                    continue;
                }
                for value in matched_values(expr, label) {
                    matchers += 1;
                    assert!(
                        values.contains(&value),
                        "{path}: {alert} matches {label}=\"{value}\", which {metric} never \
                         has; the code emits {values:?}"
                    );
                }
            }
        }
        let (_, human) = alerts
            .iter()
            .find(|(a, _)| a == "TaskResetCallsNeedAHuman")
            .unwrap_or_else(|| panic!("{path}: no TaskResetCallsNeedAHuman"));
        let named = matched_values(human, "outcome");
        for class in [
            OutcomeClass::Rejected,
            OutcomeClass::Ambiguous,
            OutcomeClass::CredentialsRejected,
        ] {
            assert!(
                named.contains(class.as_str()),
                "{path}: TaskResetCallsNeedAHuman does not match outcome {}: {human}",
                class.as_str()
            );
        }
    }
    println!("{matchers} label matchers in the alert rules checked");
}

#[test]
fn promtool_test_cases_feed_the_series_the_controller_exposes() {
    let metrics = Metrics::default();
    let exposed = samples(&metrics.encode().expect("encode"));
    let emitted = emitted_label_values();
    // Labels Prometheus adds at scrape time (target labels), not the controller.
    let target_labels = [
        "job",
        "instance",
        "namespace",
        "pod",
        "service",
        "container",
    ];
    let tests = read(RULE_TESTS);
    let mut checked = 0;
    for line in tests.lines() {
        let Some(series) = line.trim().strip_prefix("- series: ") else {
            continue;
        };
        let series = series.trim().trim_matches('\'').trim_matches('"');
        let (name, labels) = parse_series(series);
        if !name.starts_with("taskreset_") && !name.starts_with("process_") {
            continue;
        }
        checked += 1;
        assert!(
            exposed.iter().any(|(n, _, _)| *n == name),
            "{RULE_TESTS}: {name} is not a series the controller exposes"
        );
        let build_facts = BUILD_FACTS
            .iter()
            .find(|(metric, _)| *metric == name)
            .map(|(_, labels)| *labels);
        for (label, value) in labels {
            if target_labels.contains(&label.as_str()) {
                continue;
            }
            if let Some(facts) = build_facts {
                assert!(
                    facts.contains(&label.as_str()),
                    "{RULE_TESTS}: {name} has no label {label}"
                );
                continue;
            }
            if label == "le" {
                assert!(
                    exposed
                        .iter()
                        .any(|(n, l, _)| *n == name && l.get("le") == Some(&value)),
                    "{RULE_TESTS}: {name} has no bucket le=\"{value}\""
                );
                continue;
            }
            let values = emitted
                .get(&(name.clone(), label.clone()))
                .unwrap_or_else(|| panic!("{RULE_TESTS}: {name} has no label {label}"));
            assert!(
                values.contains(&value),
                "{RULE_TESTS}: {name}{{{label}=\"{value}\"}} is never emitted; the code emits \
                 {values:?}"
            );
        }
    }
    assert!(checked > 0, "{RULE_TESTS}: no taskreset_ series");
    println!("{checked} input series of the promtool tests are real series");
}
